"""Jobs travel as msgpack: bodies survive byte for byte, errors come back as
messages, and a pickled payload planted in Redis runs nothing in a worker."""

from __future__ import annotations

import asyncio
import pathlib
import pickle
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ingest.errors import IngestError
from ingest.jobcodec import RemoteJobError, deserialize_job, serialize_job
from ingest.keys import Keys
from ingest.settings import Settings


def test_round_trip_keeps_bytes_and_structure() -> None:
    body = bytes(range(256)) * 300
    job = {"f": "parse_feed", "a": ({"feed_id": "x", "tags": ("a", "b")}, {"body": body, "headers": {"etag": "1"}}),
           "k": {}, "t": 1, "et": 1700000000000}
    back = deserialize_job(serialize_job(job))
    assert back["a"][1]["body"] == body
    assert back["a"][0]["tags"] == ["a", "b"]
    assert back["f"] == "parse_feed" and back["t"] == 1


def test_exceptions_come_back_as_messages() -> None:
    back = deserialize_job(serialize_job({"r": ValueError("bad feed"), "s": False}))
    assert isinstance(back["r"], RemoteJobError) and isinstance(back["r"], IngestError)
    assert str(back["r"]) == "ValueError: bad feed"


def test_other_objects_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot encode"):
        serialize_job({"r": object()})


class _Planted:
    """What an attacker with write access to Redis would store: code run by unpickling."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (pathlib.Path.touch, (self.path,))


async def test_a_pickled_job_planted_in_redis_runs_nothing(
    settings: Settings, worker: None, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    planted = pickle.dumps({"f": "fetch_once", "a": (_Planted(canary),), "k": {}, "t": 1, "et": 0})
    assert not canary.exists()
    client = aioredis.Redis.from_url(settings.redis_url)
    await client.set("arq:job:planted", planted)
    await client.zadd(Keys(settings.namespace).queue, {"planted": int(time.time() * 1000)})  # due now
    for _ in range(100):  # bounded: the worker picks it up within a poll or two
        if await client.zscore(Keys(settings.namespace).queue, "planted") is None:
            break
        await asyncio.sleep(0.05)
    assert await client.zscore(Keys(settings.namespace).queue, "planted") is None  # taken and failed
    assert not canary.exists()
    await client.aclose()


def test_a_job_holding_a_body_logs_its_length_not_its_bytes() -> None:
    """arq logs each job's arguments with repr(): a fetched body shows as its length."""
    from arq.utils import args_to_string

    body = b"<rss>" + b"x" * 70_000 + b"</rss>"
    job = deserialize_job(serialize_job({"f": "parse_feed", "a": [{"url": "u"}, {"body": body, "status": 200}],
                                         "k": {}}))
    fetched = job["a"][1]
    assert fetched["body"] == body and fetched == {"body": body, "status": 200}
    shown = args_to_string(job["a"], job["k"])
    assert "<70011 bytes>" in shown and "xxxx" not in shown and "'status': 200" in shown
