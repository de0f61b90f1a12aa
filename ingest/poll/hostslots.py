"""One host's politeness shared by every process: the pollers and the article fetchers.

Feed polls are paced per daemon by `politeness.HostPacer`, in memory: free, and
enough while one daemon is the only client of a host. Article pages (#15) are
fetched by the worker processes, from the same hosts, so the host's limits
(`per_host_concurrency` requests in flight, `host_min_delay` seconds between
two starts) must hold across processes. They live in Redis for such hosts
(`HostSlots`): a sorted set of the requests in flight (each with a lease, so a
crashed holder's slot frees itself) and the next allowed start, both changed
by one script (`_ACQUIRE`), in Redis time.

The poller must not pay a Redis round trip per poll for the many hosts no
article comes from. So article fetchers announce their host in
`<ns>:hosts:shared` and `PollGate` (one per poller) reads that set twice a
second (one round trip per half second, whatever the number of polls). A poll
of a host in the set takes its slot in Redis; other polls take none. What
makes this safe:

* the first article request to a host not shared yet waits `ANNOUNCE_SECONDS`
  (2 s), so every poller has read the set before it starts;
* a poller whose view is older than `VIEW_VALID_SECONDS` (1.5 s: Redis slow or
  gone, its loop stalled) treats every host as shared until it reads again;
* a poll already under way when its host turns up in the set is adopted: its
  slot is taken in Redis (never refused, it is running) with its start time,
  so the count and the gap include it.

The remaining gap, stated: a poller whose next read of the set comes more than
`ANNOUNCE_SECONDS` after a host is announced (its loop stalled ~1.5 s) adopts its
running polls of that host late, and one may overlap the first article request.
docs/decisions.md says why that was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ingest.keys import Keys
from ingest.settings import Settings

__all__ = ["ANNOUNCE_SECONDS", "REFRESH_SECONDS", "SHARE_SECONDS", "VIEW_VALID_SECONDS", "HostSlots",
           "PollGate"]

log = logging.getLogger(__name__)

REFRESH_SECONDS = 0.5  # how often a poller reads the shared hosts
VIEW_VALID_SECONDS = 1.5  # a view older than this: every host counts as shared
ANNOUNCE_SECONDS = 2.0  # a newly shared host's first article request waits this long
SHARE_SECONDS = 600.0  # a host stays shared this long after its last article request
_FULL_RETRY = 0.05  # seconds between two tries for a slot while the host is full

# KEYS: the host's slots (zset), its pacing (hash).
# ARGV: token, limit, min gap ms, lease ms, article (0/1), announce ms, share ms,
#       adopted (ms since a running request started; -1: a new request).
# Returns 0: the slot is taken, start now; -1: the host is full, ask again shortly;
# else ms to wait before asking again (the next allowed start, or the announcement).
# A slot is taken only to start at once, so a request waiting for its turn never
# holds one (a poll adopted meanwhile must count, and the waiter must see it).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, limit, gap, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local announce, share, adopted = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local next_at = tonumber(redis.call('HGET', KEYS[2], 'next') or '0')
local shared_until = tonumber(redis.call('HGET', KEYS[2], 'shared_until') or '0')
if ARGV[5] == '1' then
  if shared_until <= now then next_at = math.max(next_at, now + announce) end
  shared_until = now + share
end
local wait = 0
if adopted >= 0 then
  next_at = math.max(next_at, now - adopted + gap)
elseif redis.call('ZCARD', KEYS[1]) >= limit then
  wait = -1
elseif next_at > now then
  wait = next_at - now
else
  next_at = now + gap
end
redis.call('HSET', KEYS[2], 'next', next_at, 'shared_until', shared_until)
redis.call('PEXPIRE', KEYS[2], math.max(next_at, shared_until, now) - now + 1000)
if wait == 0 then
  redis.call('ZADD', KEYS[1], now + lease, token)
  redis.call('PEXPIRE', KEYS[1], lease)
end
return wait
"""


class HostSlots:
    """Per-host slots and pacing in Redis, for every process that fetches from the host."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, per_host: int, min_delay: float,
                 lease_seconds: float) -> None:
        self.redis = redis
        self.keys = keys
        self.per_host = per_host
        self.min_delay_ms = int(min_delay * 1000)
        self.lease_ms = int(lease_seconds * 1000)
        self._acquire = redis.register_script(_ACQUIRE)

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, keys: Keys, settings: Settings) -> HostSlots:
        # A request (redirect hops included) rarely outlives two fetch timeouts; a holder
        # that died frees its slot when the lease runs out.
        return cls(redis, keys, settings.per_host_concurrency, settings.host_min_delay,
                   2 * settings.fetch_timeout + settings.host_min_delay)

    async def _try(self, host: str, token: str, article: bool, adopted_ms: int = -1) -> int:
        args: list[str | int] = [token, self.per_host, self.min_delay_ms, self.lease_ms, int(article),
                int(ANNOUNCE_SECONDS * 1000), int(SHARE_SECONDS * 1000), adopted_ms]
        keys = [self.keys.host_slots(host), self.keys.host_pace(host)]
        if not article:
            return int(await self._acquire(keys=keys, args=args))
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            pipe.zadd(self.keys.shared_hosts, {host: (time.time() + SHARE_SECONDS) * 1000})
            await self._acquire(keys=keys, args=args, client=pipe)
            _, wait = await pipe.execute()
        return int(wait)

    @contextlib.asynccontextmanager
    async def slot(self, host: str, article: bool = False) -> AsyncIterator[None]:
        """Hold one of the host's slots for a request, starting no earlier than its pacing
        allows. `article`: announce the host as shared (the article fetchers)."""
        token = uuid.uuid4().hex
        try:
            while (wait_ms := await self._try(host, token, article)) != 0:
                await asyncio.sleep(_FULL_RETRY if wait_ms < 0 else wait_ms / 1000)
        except (RedisError, OSError) as e:
            # Redis down or failing over: the request goes ahead, paced by this process's
            # own limits alone (the poller's HostPacer), rather than fail for want of a slot.
            log.warning("%s: shared host slots unavailable (%s); paced by this process alone", host, e)
            yield
            return
        try:
            yield
        finally:
            await self.release(host, token)

    async def adopt(self, host: str, token: str, running_for: float) -> None:
        """Count a request already under way (for `running_for` seconds) in the host's slots."""
        await self._try(host, token, False, adopted_ms=max(int(running_for * 1000), 0))

    async def release(self, host: str, token: str) -> None:
        # Shielded: a cancelled request still gives its slot back. When Redis cannot be
        # told, the slot's lease runs out by itself (`lease_ms`).
        try:
            await asyncio.shield(self.redis.zrem(self.keys.host_slots(host), token))
        except (RedisError, OSError) as e:
            log.warning("%s: host slot not given back (%s); its lease ends it", host, e)


class _Running:
    """A poll this poller runs outside Redis (its host not shared when it started)."""

    __slots__ = ("adopted", "started")

    def __init__(self, started: float) -> None:
        self.started = started  # time.monotonic()
        self.adopted = False


@dataclass
class PollGate:
    """A poller's view of the shared hosts and the polls it runs outside Redis."""

    slots: HostSlots
    shared: frozenset[str] = frozenset()
    read_at: float = float("-inf")  # monotonic time the view was asked for
    running: dict[str, dict[str, _Running]] = field(default_factory=dict)
    token_prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:16] + ":")  # this poller's
    sequence: itertools.count[int] = field(default_factory=itertools.count)

    def is_shared(self, host: str) -> bool:
        """Must this poll take its slot in Redis? Yes for a shared host, and for every
        host while the view is too old to trust."""
        return host in self.shared or time.monotonic() - self.read_at > VIEW_VALID_SECONDS

    def slot(self, host: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Around one poll (inside the daemon's own HostPacer slot)."""
        if self.is_shared(host):
            return self.slots.slot(host)
        return _LocalPoll(self, host)


    async def refresh(self) -> None:
        """Read the shared hosts; adopt the running polls of hosts newly among them."""
        asked = time.monotonic()
        now_ms = time.time() * 1000
        async with self.slots.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self.slots.keys.shared_hosts, "-inf", now_ms)
            pipe.zrangebyscore(self.slots.keys.shared_hosts, now_ms, "+inf")
            _, members = await pipe.execute()
        shared = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        new, self.shared, self.read_at = shared - self.shared, shared, asked
        for host in new & set(self.running):
            for token, running in list(self.running.get(host, {}).items()):
                if not running.adopted:
                    running.adopted = True
                    await self.slots.adopt(host, token, time.monotonic() - running.started)
                    if token not in self.running.get(host, {}):  # it ended meanwhile
                        await self.slots.release(host, token)

    async def keep_fresh(self, stop: asyncio.Event) -> None:
        """Refresh every REFRESH_SECONDS until `stop`; Redis errors leave the view to age
        (then every poll takes its slot in Redis, and fails there as it would anyway)."""
        while not stop.is_set():
            try:
                await self.refresh()
            except (RedisError, OSError) as e:
                log.warning("shared hosts not read: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)


class _LocalPoll:
    """A poll of a host that is not shared: noted in the gate (so that it can be adopted if
    the host turns shared), no Redis. A plain object: an asynccontextmanager cost ~5 us a
    poll (#21)."""

    __slots__ = ("gate", "host", "running", "token")

    def __init__(self, gate: PollGate, host: str) -> None:
        self.gate = gate
        self.host = host
        self.token = f"{gate.token_prefix}{next(gate.sequence)}"  # unique; uuid4() cost ~4 us a poll
        self.running = _Running(time.monotonic())

    async def __aenter__(self) -> None:
        polls = self.gate.running.get(self.host)
        if polls is None:
            polls = self.gate.running[self.host] = {}
        polls[self.token] = self.running

    async def __aexit__(self, *exc: object) -> None:
        running = self.gate.running
        polls = running[self.host]
        del polls[self.token]
        if not polls:
            del running[self.host]
        if self.running.adopted:
            await self.gate.slots.release(self.host, self.token)
