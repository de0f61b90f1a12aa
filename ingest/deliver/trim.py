"""The stream trimmer: one task of `ingest run`, off the per-entry path (#20).

Delivery appends with only a generous hard cap (`XADD MAXLEN ~` 110% of
`stream_max_entries`, a last resort when no trimmer runs). Every
`stream_trim_seconds` this task reads the consumer groups (XINFO GROUPS,
XPENDING and XINFO CONSUMERS of the durable ones: a handful of pipelined
commands, whatever the rate of items) and decides (ingest/deliver/retention.py):

* the cut: entries older than both the best-effort window (`stream_maxlen`)
  and the oldest entry a protected durable group has not acknowledged go, by
  one `XTRIM MINID ~` (whole nodes, no entry read); where the window starts is
  known from marks the trimmer keeps (retention.py), refined after a burst by
  reading at most REFINE ids; on Redis 8.2+, when every group on the stream is
  a protected durable group, one `XTRIM MAXLEN ~ window ACKED` does the same
  on the server;
* past a hard cap the stream is cut anyway and each entry cut is counted
  (`stream_trimmed_unread`, an error in the log);
* backpressure: near a cap the key `<ns>:backpressure` says why, and the
  pollers and `enqueue` stop taking work until it is gone;
* durable groups away past `durable_group_timeout` are released: a loud log
  line, a dead letter (kind `group`) and `durable_groups_released`.

With several `ingest run` processes, one of them trims: it holds a lock it
renews each tick, and another takes over when it stops renewing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from ingest.deliver.dead import dead_letter_group
from ingest.deliver.retention import (
    GroupView,
    Limits,
    Mark,
    TrimPlan,
    acked_trim_usable,
    advance_marks,
    after,
    backpressure_reason,
    cut_of,
    id_tuple,
    plan_trim,
    window_mark,
    with_mark,
)
from ingest.keys import Keys
from ingest.settings import Settings

__all__ = ["TickResult", "Trimmer", "durable_group_names", "limits_of", "read_busy"]

log = logging.getLogger(__name__)

# Entries read at most per tick to place the window's start inside a burst that came
# between two ticks (XRANGE from the client: ~1-3 ms for 1,000 records of ~3 KB).
REFINE = 1000

# KEYS[1] the lock; ARGV: token, ms. The trimmer holding it keeps it (its marks of where
# the window starts live in its memory); another takes over once it expires.
_LEAD_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""


def durable_group_names(settings: Settings, keys: Keys, webhook_names: Sequence[str]) -> frozenset[str]:
    """Pure: the durable groups: the storage sink, each webhook, `durable_groups`."""
    named = [g.strip() for g in settings.durable_groups.split(",") if g.strip()]
    return frozenset([keys.storage_group, *(keys.webhook_group(n) for n in webhook_names), *named])


def limits_of(settings: Settings) -> Limits:
    return Limits(window=settings.stream_maxlen, max_entries=settings.stream_max_entries,
                  max_bytes=settings.stream_max_bytes,
                  group_timeout_ms=int(settings.durable_group_timeout * 1000))


async def read_busy(redis: aioredis.Redis, keys: Keys) -> str | None:
    """Why the service takes no new work now (backpressure), or None."""
    raw = await redis.get(keys.backpressure)
    if raw is None:
        return None
    try:
        return str(json.loads(raw)["reason"])
    except (ValueError, KeyError, TypeError):
        return "backpressure (unreadable reason)"


@dataclass(frozen=True)
class TickResult:
    """What one tick did (for logs and tests)."""

    plan: TrimPlan | None  # None: another trimmer held the lock, or no stream yet
    trimmed: int = 0  # entries cut within the rules
    trimmed_unread: int = 0  # entries cut past a durable group's floor (a cap)
    busy: str | None = None  # the backpressure reason written, if any


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(row: dict[Any, Any], name: str) -> Any:
    return row.get(name, row.get(name.encode()))


class Trimmer:
    """Reads the groups, cuts the stream, writes the backpressure state; one tick at a time."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, settings: Settings, durable: frozenset[str],
                 token: str) -> None:
        self.redis = redis
        self.keys = keys
        self.durable = durable
        self.limits = limits_of(settings)
        self.interval = settings.stream_trim_seconds
        self.token = token
        self.version: tuple[int, ...] | None = None
        self._lead = redis.register_script(_LEAD_LUA)
        self.marks: tuple[Mark, ...] = ()  # where the window starts (retention.advance_marks)
        self.length_after: int | None = None  # the stream's length after our last tick

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until stop; a failed tick (Redis away) is logged and the next one tried."""
        while not stop.is_set():
            try:
                await self.tick()
            except (RedisError, RedisClusterException, OSError) as e:
                log.warning("stream trimmer: %s; trying again in %.1f s", e, self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def _server_version(self) -> tuple[int, ...]:
        if self.version is None:
            try:
                info = await self.redis.info("server")
                raw = str(info.get("redis_version", "0"))
                self.version = tuple(int(p) for p in raw.split(".")[:2] if p.isdigit())
            except (RedisError, ValueError, AttributeError):
                self.version = (0,)
        return self.version

    async def _read(self) -> tuple[list[GroupView], list[str], str, str, int, int] | None:
        """Every group (views of the durable ones), first and last ids, length, bytes;
        None: no stream."""
        stream = self.keys.items_stream
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xinfo_groups(stream)
                pipe.xinfo_stream(stream)
                pipe.memory_usage(stream, samples=5)
                rows, info, size = await pipe.execute()
        except ResponseError:
            return None  # no stream yet
        names = [_text(_field(r, "name")) for r in rows]
        durable = [r for r, n in zip(rows, names, strict=True) if n in self.durable]
        views: list[GroupView] = []
        if durable:
            async with self.redis.pipeline(transaction=False) as pipe:
                for row in durable:
                    name = _text(_field(row, "name"))
                    pipe.xpending(stream, name)
                    pipe.xinfo_consumers(stream, name)
                replies = await pipe.execute()
            for i, row in enumerate(durable):
                summary, consumers = replies[2 * i], replies[2 * i + 1]
                idle = [int(_field(c, "idle")) for c in consumers]
                oldest = summary.get("min")
                views.append(GroupView(
                    name=_text(_field(row, "name")), last_delivered=_text(_field(row, "last-delivered-id")),
                    pending=int(summary.get("pending") or 0), oldest_pending=_text(oldest) if oldest else None,
                    consumers=len(consumers), idle_ms=min(idle) if idle else None))
        last = _text(_field(info, "last-generated-id") or "0-0")
        first_entry = _field(info, "first-entry")
        first = _text(first_entry[0]) if first_entry else last
        return views, names, first, last, int(_field(info, "length") or 0), int(size or 0)

    async def tick(self, now: float | None = None) -> TickResult:
        """One round: read, decide, cut, count, say whether the service is busy."""
        now = time.time() if now is None else now
        lock_ms = max(1000, int(self.interval * 3000))
        if not await self._lead(keys=[self.keys.trim_lock], args=[self.token, lock_ms]):
            self.marks, self.length_after = (), None  # another trimmer leads; start afresh if we take over
            return TickResult(None)
        read = await self._read()
        if read is None:
            await self.redis.delete(self.keys.backpressure)
            return TickResult(None)
        views, names, first, last, length, size = read
        plan = plan_trim(views, self.durable, first, last, length, size, self.limits, int(now * 1000))
        await self._mark(plan, views, now)
        appended = max(0, length - self.length_after) if self.length_after is not None else 0
        self.marks = advance_marks(self.marks, appended, last, max(1, plan.window // 100))
        trimmed = await self._cut_safely(plan, names, first)
        unread = 0
        if trimmed:
            length = int(await self.redis.xlen(self.keys.items_stream))
            size = int(size * length / max(length + trimmed, 1))  # estimate; read afresh next tick
        if length > plan.hard_length:
            unread = int(await self.redis.xtrim(self.keys.items_stream, maxlen=plan.hard_length,
                                                approximate=False))
            if unread:
                log.error("item stream over its cap (%d entries > %d): %d entries cut that group %s "
                          "had not acknowledged (stream_trimmed_unread)", length, plan.hard_length, unread,
                          plan.holder)
                await self.redis.hincrby(self.keys.stats, "stream_trimmed_unread", unread)  # type: ignore[misc]
                length -= unread
        self.length_after = length
        busy = await self._backpressure(length, size, plan, now)
        return TickResult(plan, trimmed, unread, busy)

    async def _cut_safely(self, plan: TrimPlan, groups: Sequence[str], first: str) -> int:
        """Cut whole nodes before the older of the window's start and the floor."""
        stream = self.keys.items_stream
        if acked_trim_usable(await self._server_version(), groups, plan.protected):
            reply = await self.redis.execute_command(  # type: ignore[no-untyped-call]
                "XTRIM", stream, "MAXLEN", "~", plan.window, "LIMIT", 0, "ACKED")
            return int(reply)
        cut = cut_of(plan.floor, await self._window_start(plan.window))
        if cut is None or id_tuple(cut) <= id_tuple(first):
            return 0
        self.marks = tuple(m for m in self.marks if id_tuple(m[0]) >= id_tuple(cut))
        reply = await self.redis.execute_command(  # type: ignore[no-untyped-call]
            "XTRIM", stream, "MINID", "~", cut, "LIMIT", 0)
        return int(reply)

    async def _window_start(self, window: int) -> str | None:
        """Where the window starts: after the newest mark with `window` entries after it;
        closer, by reading ids after it, when a burst put more than 1% of the window there."""
        mark = window_mark(self.marks, window)
        if mark is None:
            return None
        excess = mark[1] - window
        if excess > max(1, window // 100):
            rows = await self.redis.xrange(self.keys.items_stream, min=f"({mark[0]}", count=min(excess, REFINE))
            if rows:
                last = _text(rows[-1][0])
                mark = (last, mark[1] - len(rows))
                self.marks = with_mark(self.marks, mark)
        return after(mark[0])

    async def _mark(self, plan: TrimPlan, views: Sequence[GroupView], now: float) -> None:
        """Record which groups hold the stream; say so loudly when one is released or back."""
        raw: dict[bytes, bytes] = await self.redis.hgetall(self.keys.durable_groups)  # type: ignore[misc]
        before = {_text(k): _text(v) for k, v in raw.items()}
        state = {name: "protected" for name in plan.protected}
        for name in plan.released:
            state[name] = before[name] if before.get(name, "").startswith("released") else f"released:{int(now)}"
        by_name = {v.name: v for v in views}
        for name in plan.released:
            if before.get(name, "").startswith("released"):
                continue
            g = by_name[name]
            why = (f"durable group {name!r} released: no consumer has read for it in "
                   f"{self.limits.group_timeout_ms / 1000:.0f} s (durable_group_timeout) while it was "
                   f"behind ({g.pending} pending, last read {g.last_delivered}); the stream no longer "
                   "waits for it, and entries it has not acknowledged may be trimmed")
            log.error("%s", why)
            await dead_letter_group(self.redis, self.keys, name, why)
        for name in plan.protected:
            if before.get(name, "").startswith("released"):
                log.warning("durable group %r is back: the stream is kept for it again from where it is",
                            name)
        async with self.redis.pipeline(transaction=False) as pipe:
            gone = [n for n in before if n not in state]
            if gone:
                pipe.hdel(self.keys.durable_groups, *gone)
            if state:
                pipe.hset(self.keys.durable_groups, mapping=state)
            await pipe.execute()

    async def _backpressure(self, length: int, size: int, plan: TrimPlan, now: float) -> str | None:
        key = self.keys.backpressure
        engaged_raw = await self.redis.get(key)
        reason = backpressure_reason(length, size, self.limits, engaged_raw is not None, plan.holder)
        if reason is None:
            if engaged_raw is not None:
                await self.redis.delete(key)
                log.warning("backpressure lifted: the item stream is back under its caps (%d entries); "
                            "polling and enqueue resume", length)
            return None
        since = now
        if engaged_raw is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                since = float(json.loads(engaged_raw)["since"])
        else:
            log.error("backpressure: %s; pollers stop claiming and enqueue answers busy until the "
                      "groups catch up", reason)
            await self.redis.hincrby(self.keys.stats, "backpressure_engaged", 1)  # type: ignore[misc]
        ttl_ms = int(max(5.0, self.interval * 5) * 1000)
        await self.redis.set(key, json.dumps({"reason": reason, "since": since}), px=ttl_ms)
        return reason
