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
    push_to_stream_seconds_bucket:<le>, _sum, _count
                                     the same for WebSub pushes: from the push's
                                     arrival to its XADD (#11)
    push_received, push_bytes, push_refused:<reason>, push_subscribe_errors
                                     WebSub callbacks (ingest/push/)
    dead_letters:<kind>              dead letters written, by kind

Items delivered per minute (the status page's chart) go to one small key per
minute, `<ns>:minute:<epoch minute>`, that expires after two hours.

The decisions (which class, which bucket) are pure functions; the writers
are one call each at the place of the event. A processed document adds its
counters in one round trip (a small script). A poll is cheaper than a round
trip: a 304 costs ~0.15-0.4 ms of client CPU and one more Redis call would
add ~0.1-0.3 ms (bench/bench_web.py), so polls are summed in memory and
flushed at most once a second per process, in one round trip; the counts of
the last second before a process dies may be lost (metrics, not records).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.models import Fetched, FetchFailed, Item, NotModified
from ingest.redis_conn import ScriptCall, run_script

__all__ = [
    "FETCH_BUCKETS",
    "LATENCY_BUCKETS",
    "PUSHED_HEADER",
    "bucket_for",
    "bucket_index",
    "fetch_counters",
    "fetch_outcome",
    "latency_counters",
    "latency_field",
    "record_fetch",
    "processing_call",
    "record_processing",
]

log = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
MAX_FLUSH_FAILURES = 600  # ten minutes of a Redis outage; the counts are kept until then

# Upper bounds in seconds; "+Inf" catches the rest. Chosen for feed fetches
# (tens of ms to the 30 s timeout) and for fetch-to-stream (ms to minutes).
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
MINUTE_KEY_TTL = 7200
# Marks a document that arrived by WebSub push (ingest/push/receive.py sets it on
# the parse job's headers), so its delivery latency gets a histogram of its own.
PUSHED_HEADER = "x-ingest-pushed"

# KEYS[1] stats hash, KEYS[2] minute key (or ""); ARGV[1] number of integer
# pairs, ARGV[2] items for the minute key, then integer pairs, then float pairs.
_ADD = """
local ints = tonumber(ARGV[1])
local last_int = 2 + ints * 2
for i = 3, last_int, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = last_int + 1, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
end
local items = tonumber(ARGV[2])
if items > 0 then
  redis.call('INCRBY', KEYS[2], items)
  redis.call('EXPIRE', KEYS[2], TTL)
end
return 1
""".replace("TTL", str(MINUTE_KEY_TTL))


def _add_call(keys: Keys, ints: dict[str, int], floats: dict[str, float],
              minute_items: int = 0, now: float = 0.0) -> ScriptCall:
    """Pure: the script call (text, keys, args) adding every counter of one event."""
    args: list[Any] = [len(ints), minute_items]
    for name, count in ints.items():
        args += [name, count]
    for name, amount in floats.items():
        args += [name, repr(float(amount))]
    minute = keys.items_minute(int(now // 60)) if minute_items else keys.stats
    return _ADD, [keys.stats, minute], args


async def _add(redis: aioredis.Redis, keys: Keys, ints: dict[str, int], floats: dict[str, float],
               minute_items: int = 0, now: float = 0.0) -> None:
    """Add every counter of one event in one round trip."""
    await run_script(redis, _add_call(keys, ints, floats, minute_items, now))


def bucket_index(seconds: float, buckets: Sequence[float]) -> int:
    """Pure: the position of the smallest bucket holding `seconds`; len(buckets) past the
    last (and for NaN, which no bound holds): the "+Inf" bucket."""
    for position, bound in enumerate(buckets):
        if seconds <= bound:
            return position
    return len(buckets)


def bucket_for(seconds: float, buckets: Sequence[float]) -> str:
    """Pure: the label of the smallest bucket holding `seconds` ("+Inf" past the last)."""
    position = bucket_index(seconds, buckets)
    return f"{buckets[position]:g}" if position < len(buckets) else "+Inf"


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


# The counters' names a poll adds to, formatted once rather than per poll (the bucket's
# label and two f-strings: 1.2 -> 0.7 us a poll, #21, decision 164).
_FETCH_BUCKET_NAMES = (*(f"fetch_seconds_bucket:{bound:g}" for bound in FETCH_BUCKETS), "fetch_seconds_bucket:+Inf")
_OUTCOME_NAMES: dict[str, str] = {}  # outcome class -> counter name; the classes are few (fetch_outcome)


def fetch_counters(result: Fetched | NotModified | FetchFailed, seconds: float,
                   parsed: bool) -> dict[str, int]:
    """Pure: the integer counters one poll adds (its sum of seconds goes beside them)."""
    outcome = fetch_outcome(result, parsed)
    outcome_name = _OUTCOME_NAMES.get(outcome)
    if outcome_name is None:
        outcome_name = f"fetch_outcome:{outcome}"
        if len(_OUTCOME_NAMES) < 1000:  # bounded whatever statuses servers invent
            _OUTCOME_NAMES[outcome] = outcome_name
    ints = {outcome_name: 1, _FETCH_BUCKET_NAMES[bucket_index(seconds, FETCH_BUCKETS)]: 1, "fetch_seconds_count": 1}
    if isinstance(result, Fetched):
        ints["fetch_bytes"] = len(result.body)
    return ints


class _Buffer:
    """Counters summed in memory for one Redis client and namespace, flushed in one round trip."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys
        self.key = (id(redis), keys.ns)
        self.ints: dict[str, int] = {}
        self.floats: dict[str, float] = {}
        self.scheduled = False
        self.failures = 0  # flushes failed in a row

    def add(self, ints: dict[str, int], floats: dict[str, float]) -> None:
        for name, n in ints.items():
            self.ints[name] = self.ints.get(name, 0) + n
        for name, x in floats.items():
            self.floats[name] = self.floats.get(name, 0.0) + x
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._start_flush)

    def _start_flush(self) -> None:
        task = asyncio.ensure_future(self.flush())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    async def flush(self) -> None:
        ints, floats = self.ints, self.floats
        self.ints, self.floats, self.scheduled = {}, {}, False
        try:
            await _add(self.redis, self.keys, ints, floats)
        except Exception as e:  # noqa: BLE001 - Redis away: keep the counts for the next flush
            self.failures += 1
            if self.failures >= MAX_FLUSH_FAILURES:  # the client is gone for good: stop trying
                log.warning("dropping %d metric counters after %d failed flushes: %s", len(ints),
                            self.failures, e)
                _BUFFERS.pop(self.key, None)
                return
            log.debug("counters not flushed (%s); kept for the next try", e)
            self.add(ints, floats)
            return
        self.failures = 0
        if not self.scheduled:  # idle: forget this client (it may be closed and dropped)
            _BUFFERS.pop(self.key, None)


_BUFFERS: dict[tuple[int, str], _Buffer] = {}
_TASKS: set[asyncio.Future[None]] = set()  # flushes in flight (kept referenced until done)


async def record_fetch(
    redis: aioredis.Redis, keys: Keys, result: Fetched | NotModified | FetchFailed,
    seconds: float, parsed: bool,
) -> None:
    """Count one poll: its outcome class, its latency and the bytes received (buffered, see above)."""
    buffer = _BUFFERS.get((id(redis), keys.ns))
    if buffer is None or buffer.redis is not redis:
        buffer = _Buffer(redis, keys)
        _BUFFERS[buffer.key] = buffer
    buffer.add(fetch_counters(result, seconds, parsed), {"fetch_seconds_sum": seconds})


def _age(fetched_at: str, now: float) -> float | None:
    try:
        return max(0.0, now - datetime.fromisoformat(fetched_at.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def latency_field(headers: Mapping[str, str]) -> str:
    """Pure: the latency histogram of a document: pushed (#11) or fetched."""
    return "push_to_stream_seconds" if PUSHED_HEADER in headers else "fetch_to_stream_seconds"


def latency_counters(items: Sequence[Item], now: float,
                     field: str = "fetch_to_stream_seconds") -> tuple[dict[str, int], float]:
    """Pure: histogram increments for the fetch-to-stream latency of delivered items, and their sum."""
    ints: dict[str, int] = {}
    total = 0.0
    for item in items:
        age = _age(item.fetched_at, now)
        if age is None:
            continue
        name = f"{field}_bucket:{bucket_for(age, LATENCY_BUCKETS)}"
        ints[name] = ints.get(name, 0) + 1
        ints[f"{field}_count"] = ints.get(f"{field}_count", 0) + 1
        total += age
    return ints, total


def processing_call(
    keys: Keys, parse_seconds: float, normalize_seconds: float,
    delivered: Sequence[Item], now: float | None = None, latency: str = "fetch_to_stream_seconds",
    **problems: int,
) -> ScriptCall:
    """The script call (text, keys, args) of `record_processing`, for a caller that sends
    it with other scripts in one round trip (ingest.redis_conn.run_scripts)."""
    now = time.time() if now is None else now
    ints, latency_sum = latency_counters(delivered, now, latency)
    ints.update(parse_seconds_count=1, normalize_seconds_count=1)
    ints.update({name: n for name, n in problems.items() if n})
    floats = {"parse_seconds_sum": parse_seconds, "normalize_seconds_sum": normalize_seconds}
    if latency_sum:
        floats[f"{latency}_sum"] = latency_sum
    return _add_call(keys, ints, floats, len(delivered), now)


async def record_processing(
    redis: aioredis.Redis, keys: Keys, parse_seconds: float, normalize_seconds: float,
    delivered: Sequence[Item], now: float | None = None, latency: str = "fetch_to_stream_seconds",
    **problems: int,
) -> None:
    """Count one processed document: parse and normalize time, delivery latency, items per
    minute, and the `problems` it had (normalize_errors, entries_dropped, ...), in one round trip."""
    await run_script(redis, processing_call(keys, parse_seconds, normalize_seconds, delivered, now,
                                            latency, **problems))
