"""A snapshot of the service as Redis holds it: counters, queue, stream, groups, feeds.

Read by `ingest stats`, `ingest status`, `GET /api/v1/stats`, the status page
and the Prometheus collector: every process sees the same numbers, whichever
machine the fetchers and workers run on. A handful of round trips, whatever
the number of feeds except for `feeds_by_state`, which reads every feed hash
(pipelined; ~1 ms per thousand feeds).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ingest.keys import Keys
from ingest.poll.manage import FEED_STATES, feed_state
from ingest.poll.registry import list_feeds

__all__ = ["GroupInfo", "Snapshot", "feeds_by_state", "items_per_minute", "read_snapshot"]


@dataclass(frozen=True)
class GroupInfo:
    """One consumer group on the item stream."""

    name: str
    consumers: int
    pending: int  # delivered to a consumer, not yet acknowledged
    lag: int | None  # entries not yet delivered to the group (Redis 7+; None before)
    lag_seconds: float  # age gap between the newest entry and the group's last delivered one
    durable: str = ""  # "protected" (the stream waits for it), "released" (away too long), "" (not durable)


@dataclass(frozen=True)
class Snapshot:
    counters: dict[str, float]  # the `<ns>:stats` hash
    queue_depth: int  # arq jobs waiting
    stream_length: int
    dead_letters: int
    groups: list[GroupInfo] = field(default_factory=list)
    backpressure: str | None = None  # why the service takes no new work now (#20), or None

    def as_dict(self) -> dict[str, Any]:
        return {
            "counters": self.counters, "queue_depth": self.queue_depth,
            "stream_length": self.stream_length, "dead_letters": self.dead_letters,
            "groups": [g.__dict__ for g in self.groups], "backpressure": self.backpressure,
        }


def _number(raw: bytes) -> float:
    value = float(raw)
    return int(value) if value.is_integer() else value


def _field(info: dict[Any, Any], name: str) -> Any:
    return info.get(name, info.get(name.encode()))


def _id_ms(entry_id: Any) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id or "0")
    return int(text.split("-")[0] or 0)


async def _groups(redis: aioredis.Redis, keys: Keys, durable: dict[str, str]) -> list[GroupInfo]:
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xinfo_groups(keys.items_stream)
            pipe.xinfo_stream(keys.items_stream)
            rows, info = await pipe.execute()
    except ResponseError:  # no stream yet
        return []
    newest = _id_ms(_field(info, "last-generated-id"))
    first = _field(info, "first-entry")
    oldest = _id_ms(first[0]) if first else newest
    out = []
    for row in rows:
        name = _field(row, "name")
        lag = _field(row, "lag")
        # A group that has read nothing yet lags by the whole stream, not since 1970.
        delivered = _id_ms(_field(row, "last-delivered-id")) or oldest
        name = name.decode() if isinstance(name, bytes) else str(name)
        out.append(GroupInfo(
            name=name, durable=durable.get(name, "").partition(":")[0],
            consumers=int(_field(row, "consumers") or 0), pending=int(_field(row, "pending") or 0),
            lag=None if lag is None else int(lag), lag_seconds=max(0, newest - delivered) / 1000,
        ))
    return sorted(out, key=lambda g: g.name)


async def read_snapshot(redis: aioredis.Redis, keys: Keys) -> Snapshot:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.stats)
        pipe.zcard(keys.queue)
        pipe.xlen(keys.items_stream)
        pipe.xlen(keys.dead_stream)
        pipe.hgetall(keys.durable_groups)
        raw, queue, length, dead, durable = await pipe.execute()
    counters = {k.decode(): _number(v) for k, v in raw.items()}
    marks = {k.decode(): v.decode() for k, v in durable.items()}
    from ingest.deliver.trim import read_busy

    return Snapshot(counters=counters, queue_depth=int(queue), stream_length=int(length),
                    dead_letters=int(dead), groups=await _groups(redis, keys, marks),
                    backpressure=await read_busy(redis, keys))


async def feeds_by_state(redis: aioredis.Redis, keys: Keys) -> dict[str, int]:
    counts = Counter(feed_state(state) for state, _ in await list_feeds(redis, keys))
    return {name: counts.get(name, 0) for name in FEED_STATES}


async def items_per_minute(redis: aioredis.Redis, keys: Keys, minutes: int = 60,
                           now: float | None = None) -> list[tuple[int, int]]:
    """(epoch minute, items delivered) for the last `minutes` minutes, oldest first."""
    current = int((time.time() if now is None else now) // 60)
    span = list(range(current - minutes + 1, current + 1))
    values = await redis.mget([keys.items_minute(m) for m in span])
    return [(m, int(v or 0)) for m, v in zip(span, values, strict=True)]
