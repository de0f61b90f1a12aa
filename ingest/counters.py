"""Counters for metrics, written where the events happen, into Redis.

Fetchers, workers and sinks may run in different processes on different
machines, so a per-process Prometheus registry would show each scrape only
one process's share. Instead every event adds to the service-wide hash
`<ns>:stats` with one pipelined round trip (HINCRBY / HINCRBYFLOAT), and the
`/metrics` endpoint of any process turns that hash into Prometheus metrics
(ingest/web/metrics.py). Field names in the hash:

    fetch_outcome:<class>            polls by outcome: 200, 304, unchanged_body,
                                     http_<status>, timeout, network, refused, too_large, error
    fetch_seconds_bucket:<le>        fetch latency histogram, one field per bucket
    fetch_seconds_sum / _count       (not cumulative here; the collector sums them up)
    fetch_bytes                      body bytes received
    parse_seconds_sum / _count       feedparser time per document
    normalize_seconds_sum / _count   normalization time per document
    fetch_to_stream_seconds_bucket:<le>, _sum, _count
                                     from a version's fetch to its XADD, per item
    dead_letters:<kind>              dead letters written, by kind

Items delivered per minute (the status page's chart) go to one small key per
minute, `<ns>:minute:<epoch minute>`, that expires after two hours.

The decisions (which class, which bucket) are pure functions; the writers
are one call each at the place of the event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.models import Fetched, FetchFailed, Item, NotModified

__all__ = [
    "FETCH_BUCKETS",
    "LATENCY_BUCKETS",
    "bucket_for",
    "fetch_outcome",
    "record_fetch",
    "record_processing",
]

# Upper bounds in seconds; "+Inf" catches the rest. Chosen for feed fetches
# (tens of ms to the 30 s timeout) and for fetch-to-stream (ms to minutes).
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
MINUTE_KEY_TTL = 7200


def bucket_for(seconds: float, buckets: Sequence[float]) -> str:
    """Pure: the label of the smallest bucket holding `seconds` ("+Inf" past the last)."""
    for bound in buckets:
        if seconds <= bound:
            return f"{bound:g}"
    return "+Inf"


def fetch_outcome(result: Fetched | NotModified | FetchFailed, parsed: bool) -> str:
    """Pure: a small, bounded class for one poll's result."""
    if isinstance(result, NotModified):
        return "304"
    if isinstance(result, Fetched):
        return "200" if parsed else "unchanged_body"
    if result.refused:
        return "refused"
    if result.status is not None:
        return f"http_{result.status}"
    if result.network:
        return "network"
    if "timed out" in result.error:
        return "timeout"
    if "exceeds the limit" in result.error:
        return "too_large"
    return "error"


async def record_fetch(
    redis: aioredis.Redis, keys: Keys, result: Fetched | NotModified | FetchFailed,
    seconds: float, parsed: bool,
) -> None:
    """Count one poll: its outcome class, its latency and the bytes received."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.stats, f"fetch_outcome:{fetch_outcome(result, parsed)}", 1)
        pipe.hincrby(keys.stats, f"fetch_seconds_bucket:{bucket_for(seconds, FETCH_BUCKETS)}", 1)
        pipe.hincrbyfloat(keys.stats, "fetch_seconds_sum", seconds)
        pipe.hincrby(keys.stats, "fetch_seconds_count", 1)
        if isinstance(result, Fetched):
            pipe.hincrby(keys.stats, "fetch_bytes", len(result.body))
        await pipe.execute()


def _age(fetched_at: str, now: float) -> float | None:
    try:
        return max(0.0, now - datetime.fromisoformat(fetched_at.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _latency_fields(items: Sequence[Item], now: float) -> dict[str, Any]:
    """Pure: histogram increments for the fetch-to-stream latency of delivered items."""
    fields: dict[str, Any] = {}
    total = 0.0
    for item in items:
        age = _age(item.fetched_at, now)
        if age is None:
            continue
        name = f"fetch_to_stream_seconds_bucket:{bucket_for(age, LATENCY_BUCKETS)}"
        fields[name] = fields.get(name, 0) + 1
        fields["fetch_to_stream_seconds_count"] = fields.get("fetch_to_stream_seconds_count", 0) + 1
        total += age
    if total:
        fields["fetch_to_stream_seconds_sum"] = total
    return fields


async def record_processing(
    redis: aioredis.Redis, keys: Keys, parse_seconds: float, normalize_seconds: float,
    delivered: Sequence[Item], now: float | None = None,
) -> None:
    """Count one processed document: parse and normalize time, delivery latency, items per minute."""
    now = time.time() if now is None else now
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrbyfloat(keys.stats, "parse_seconds_sum", parse_seconds)
        pipe.hincrby(keys.stats, "parse_seconds_count", 1)
        pipe.hincrbyfloat(keys.stats, "normalize_seconds_sum", normalize_seconds)
        pipe.hincrby(keys.stats, "normalize_seconds_count", 1)
        for name, value in _latency_fields(delivered, now).items():
            if isinstance(value, float):
                pipe.hincrbyfloat(keys.stats, name, value)
            else:
                pipe.hincrby(keys.stats, name, value)
        if delivered:
            minute = keys.items_minute(int(now // 60))
            pipe.incrby(minute, len(delivered))
            pipe.expire(minute, MINUTE_KEY_TTL)
        await pipe.execute()
