"""Metric counters: outcome classes and buckets (pure), and the writers against real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from ingest.counters import (
    FETCH_BUCKETS,
    bucket_for,
    fetch_counters,
    fetch_outcome,
    record_fetch,
    record_processing,
)
from ingest.keys import Keys
from ingest.models import Fetched, FetchFailed, NotModified
from ingest.settings import Settings
from tests.records import record

_AT = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(("result", "parsed", "outcome"), [
    (NotModified("u", {}, _AT), False, "304"),
    (Fetched("u", "u", 200, {}, b"x", _AT), True, "200"),
    (Fetched("u", "u", 200, {}, b"x", _AT), False, "unchanged_body"),
    (FetchFailed("u", "u: HTTP 503", _AT, status=503), False, "http_503"),
    (FetchFailed("u", "refused", _AT, refused=True), False, "refused"),
    (FetchFailed("u", "cannot connect", _AT, network=True), False, "network"),
    (FetchFailed("u", "u: timed out after 30 s", _AT), False, "timeout"),
    (FetchFailed("u", "u: body exceeds the limit of 5 bytes; aborted", _AT), False, "too_large"),
    (FetchFailed("u", "u: broken response body", _AT), False, "error"),
])
def test_fetch_outcome_classes(result: object, parsed: bool, outcome: str) -> None:
    assert fetch_outcome(result, parsed) == outcome  # type: ignore[arg-type]


def test_buckets() -> None:
    assert bucket_for(0.01, FETCH_BUCKETS) == "0.05"
    assert bucket_for(0.05, FETCH_BUCKETS) == "0.05"
    assert bucket_for(0.051, FETCH_BUCKETS) == "0.1"
    assert bucket_for(31, FETCH_BUCKETS) == "+Inf"


def _fetch_counters_formatted(result: Fetched | NotModified | FetchFailed, seconds: float,
                              parsed: bool) -> dict[str, int]:
    """fetch_counters before decision 164: every name formatted per poll."""
    ints = {f"fetch_outcome:{fetch_outcome(result, parsed)}": 1,
            f"fetch_seconds_bucket:{bucket_for(seconds, FETCH_BUCKETS)}": 1, "fetch_seconds_count": 1}
    if isinstance(result, Fetched):
        ints["fetch_bytes"] = len(result.body)
    return ints


def test_fetch_counters_name_what_formatting_per_poll_named() -> None:
    results: list[Fetched | NotModified | FetchFailed] = [
        NotModified("u", {}, _AT), Fetched("u", "u", 200, {}, b"abc", _AT),
        FetchFailed("u", "u: HTTP 503", _AT, status=503), FetchFailed("u", "u: HTTP 418", _AT, status=418),
        FetchFailed("u", "u: timed out after 30 s", _AT), FetchFailed("u", "boom", _AT),
    ]
    seconds = [0.0, 0.01, 0.05, 0.0500001, 0.1, 0.2, 0.25, 0.5, 0.99, 1.0, 2.5, 4.0, 5.0, 10.0, 29.9, 30.0,
               30.01, 1e9, float("inf"), float("nan"), -1.0, *FETCH_BUCKETS]
    for result in results:
        for parsed in (False, True):
            for s in seconds:
                new, old = fetch_counters(result, s, parsed), _fetch_counters_formatted(result, s, parsed)
                assert list(new.items()) == list(old.items()), (result, s, parsed)


async def test_polls_are_summed_in_memory_and_flushed_within_seconds(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.namespace)
    for seconds in (0.02, 0.3, 0.3):
        await record_fetch(client, keys, Fetched("u", "u", 200, {}, b"abcd", _AT), seconds, True)
    await record_fetch(client, keys, NotModified("u", {}, _AT), 0.01, False)
    got: dict[bytes, bytes] = {}
    for _ in range(60):  # bounded: 6 s
        got = await client.hgetall(keys.stats)
        if got:
            break
        await asyncio.sleep(0.1)
    assert got[b"fetch_outcome:200"] == b"3" and got[b"fetch_outcome:304"] == b"1"
    assert got[b"fetch_seconds_bucket:0.05"] == b"2" and got[b"fetch_seconds_bucket:0.5"] == b"2"
    assert got[b"fetch_seconds_count"] == b"4" and got[b"fetch_bytes"] == b"12"
    assert abs(float(got[b"fetch_seconds_sum"]) - 0.63) < 1e-9
    await client.aclose()


async def test_a_processed_document_counts_time_latency_and_the_minute(settings: Settings) -> None:
    from datetime import datetime

    from ingest.models import Item

    client = aioredis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.namespace)
    raw = record(1)
    fields = {k: v for k, v in raw.items() if k in Item.__dataclass_fields__}
    item = Item(**{**fields, "fetched_at": _AT, "enclosures": []})
    now = datetime.fromisoformat("2026-01-01T00:00:02+00:00").timestamp()
    await record_processing(client, keys, 0.004, 0.006, [item, item], now)
    got = await client.hgetall(keys.stats)
    assert got[b"fetch_to_stream_seconds_bucket:2.5"] == b"2" and got[b"fetch_to_stream_seconds_count"] == b"2"
    assert float(got[b"fetch_to_stream_seconds_sum"]) == 4.0
    assert float(got[b"parse_seconds_sum"]) == 0.004 and got[b"normalize_seconds_count"] == b"1"
    assert await client.get(keys.items_minute(int(now // 60))) == b"2"
    assert 0 < await client.ttl(keys.items_minute(int(now // 60))) <= 7200
    await client.aclose()
