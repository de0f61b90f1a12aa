"""A parse job's arguments (ingest/poll/enqueue.py `job_arguments`): the same map, and the
same packed bytes, as `dataclasses.asdict` gave, whose deep copy it replaced (#21)."""

from __future__ import annotations

import dataclasses

from ingest.jobcodec import deserialize_job, serialize_job
from ingest.models import FeedSpec, Fetched
from ingest.poll.enqueue import job_arguments


def _old(spec: FeedSpec, fetched: Fetched) -> tuple[dict[str, object], dict[str, object]]:
    spec_dict = dataclasses.asdict(spec)
    spec_dict["tags"] = list(spec.tags)
    return spec_dict, dataclasses.asdict(fetched)


def test_the_arguments_pack_as_asdict_packed_them() -> None:
    spec = FeedSpec(feed_id="f1", url="https://example.org/feed", title="Feed", tags=("a", "b"),
                    full_text="auto")
    headers = {"content-type": "application/rss+xml", "etag": '"x"'}
    fetched = Fetched(url="https://example.org/feed", final_url="https://example.org/f2", status=200,
                      headers=headers, body=b"<rss>\x00\xff</rss>" * 1000, fetched_at="2026-01-05T06:00:00.1Z",
                      permanent_url=None)
    new = (job_arguments(spec), job_arguments(fetched))
    old = _old(spec, fetched)
    assert new == old
    job = {"f": "parse_feed", "a": new}
    assert serialize_job(job) == serialize_job({"f": "parse_feed", "a": old})
    assert deserialize_job(serialize_job(job))["a"] == [old[0], old[1]]
    assert new[1]["headers"] is not headers, "the job holds its own copy of the headers"
    assert Fetched(**new[1]) == fetched and FeedSpec(**{**new[0], "tags": tuple(new[0]["tags"])}) == spec


def test_a_spec_without_tags_and_a_moved_feed() -> None:
    spec = FeedSpec(feed_id="f2", url="https://example.org/other")
    fetched = Fetched(url="u", final_url="v", status=203, headers={}, body=b"", fetched_at="t",
                      permanent_url="https://example.org/moved")
    assert (job_arguments(spec), job_arguments(fetched)) == _old(spec, fetched)
