"""A job's outcome in the document's last round trip (decision 159) and the cluster index's
entries in the delivery's (decision 160): the same writes as the separate calls of before."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ingest.deliver.publish import Deliverer
from ingest.errors import ParseError
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from ingest.poll.registry import add_feed, record_success
from ingest.settings import Settings
from workers.clusters.index import ClusterIndex
from workers.pipeline import process_document

URL = "http://ex.example/outcome.xml"


def _feed(guids: list[str], title: str = "Outcome &amp; news") -> bytes:
    """Items of the last hours: the adaptive interval is the week's share, not the clock's."""
    body = "".join(
        f"<item><guid>{g}</guid><title>Story {g} about the harbour</title><link>http://ex.example/{g}</link>"
        f"<pubDate>{formatdate(time.time() - 3600 * (n + 1), usegmt=True)}</pubDate>"
        f"<description>The harbour story {g} in words that repeat: ships, cranes, tides.</description></item>"
        for n, g in enumerate(guids)
    )
    return (f'<rss version="2.0"><channel><title>{title}</title><ttl>45</ttl>{body}'
            "</channel></rss>").encode()


def _fetched(body: bytes, at: str) -> Fetched:
    return Fetched(URL, URL, 200, {"content-type": "application/rss+xml"}, body, at)


def _parts(client: aioredis.Redis, keys: Keys) -> tuple[Deliverer, ClusterIndex]:
    settings = Settings()
    return (Deliverer(client, keys, 10_000, settings.item_retention_seconds),
            ClusterIndex.from_settings(client, keys, settings))


def _counters(raw: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """The stats without the measured seconds (CPU time differs between any two runs)."""
    return {k: v for k, v in raw.items() if not k.endswith(b"_sum")}


async def _job(client: aioredis.Redis, keys: Keys, spec: FeedSpec, fetched: Fetched, joined: bool) -> Any:
    """One job's processing as workers/tasks.py does it now (`joined`) or did before."""
    deliverer, clusters = _parts(client, keys)
    processed = await process_document(deliverer, spec, fetched, clusters, note_success=joined)
    if not joined:
        await record_success(client, keys, processed.result, processed.title,
                             fetched.fetched_at, fetched.status)
    return processed


async def test_the_outcome_and_counters_are_written_as_by_record_success(
    settings: Settings, client: aioredis.Redis
) -> None:
    old, new = Keys("old"), Keys("new")
    results = {}
    for keys, joined in ((old, False), (new, True)):
        feed_id, _ = await add_feed(client, keys, URL, interval=600)
        await client.hset(keys.feed(feed_id), mapping={"consecutive_errors": 2, "last_error": "boom",
                                                       "added_at": "2026-01-01T00:00:00Z"})
        spec = FeedSpec(feed_id, URL)
        first = await _job(client, keys, spec, _fetched(_feed(["a", "b", "c"]), "2026-01-05T06:00:00Z"), joined)
        second = await _job(client, keys, spec, _fetched(_feed(["d", "a", "b", "c"]), "2026-01-05T06:10:00Z"),
                            joined)
        results[joined] = (first.result.as_dict(), second.result.as_dict(),
                           await client.hgetall(keys.feed(feed_id)), _counters(await client.hgetall(keys.stats)))
    assert results[True] == results[False]
    _, _, state, counters = results[True]
    assert state[b"items"] == b"4" and state[b"consecutive_errors"] == b"0" and state[b"last_error"] == b""
    assert state[b"title"] == b"Outcome & news" and state[b"feed_min_interval"] == b"2700.0"
    assert counters[b"fetches_ok"] == b"2"


async def test_an_unregistered_feed_gets_no_hash_only_the_counter(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys("loose")
    spec = FeedSpec("f" * 16, URL)
    await _job(client, keys, spec, _fetched(_feed(["a"]), "2026-01-05T06:00:00Z"), True)
    assert not await client.exists(keys.feed(spec.feed_id))
    assert (await client.hgetall(keys.stats))[b"fetches_ok"] == b"1"


async def test_without_note_success_nothing_is_noted(settings: Settings, client: aioredis.Redis) -> None:
    keys = Keys("plain")
    feed_id, _ = await add_feed(client, keys, URL)
    deliverer, clusters = _parts(client, keys)
    await process_document(deliverer, FeedSpec(feed_id, URL), _fetched(_feed(["a"]), "2026-01-05T06:00:00Z"),
                           clusters)
    assert b"last_status" not in await client.hgetall(keys.feed(feed_id))
    assert b"fetches_ok" not in await client.hgetall(keys.stats)


@pytest.mark.parametrize("failure", ["parse", "delivery"])
async def test_a_failed_document_is_not_noted_as_a_success(
    settings: Settings, client: aioredis.Redis, failure: str
) -> None:
    keys = Keys(f"fail-{failure}")
    feed_id, _ = await add_feed(client, keys, URL)
    await client.hset(keys.feed(feed_id), mapping={"consecutive_errors": 3, "last_error": "before"})
    before = await client.hgetall(keys.feed(feed_id))
    body = _feed(["a", "b"])
    if failure == "parse":
        body = b"<html><body>not a feed</body></html>"
    else:  # the delivery script meets a key of the wrong type and raises
        await client.set(keys.item_states(feed_id), b"not a hash")
    with pytest.raises(ParseError if failure == "parse" else ResponseError):
        await _job(client, keys, FeedSpec(feed_id, URL), _fetched(body, "2026-01-05T06:00:00Z"), True)
    assert await client.hgetall(keys.feed(feed_id)) == before
    assert b"fetches_ok" not in await client.hgetall(keys.stats)


