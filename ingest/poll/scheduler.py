"""Atomic claims on the schedule: any number of daemons, no feed fetched twice.

Feeds wait in the sorted set `<ns>:schedule`, scored by when they are next
due (epoch milliseconds). Claiming is one Lua script on the schedule: take up
to N due feeds and, in the same step, move each one's score to now + lease.
That moved score *is* the lease: if the daemon dies, the feed simply comes
due again when the lease runs out and another daemon claims it. The claim
then writes the claimant's token into each feed's hash (and reads the hash
back, so a poll needs no further read), pipelined. Completing is a script on the feed's
hash that stores the fetch's outcome only if the token is still ours, so a
daemon that stalled past its lease cannot overwrite the newer claimant's work;
the next due time is then written to the schedule.

The schedule is one key and every feed hash another, so each script touches
the keys of one slot and the whole thing runs on a Redis Cluster too (#13).
What the split costs: a daemon that stalled past its lease and completes in
the instant between a newer claim's schedule step and its token step keeps
its outcome, and the feed is fetched once more in that interval, which the
single-script claim also allowed for a stalled daemon's fetch in flight.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.redis_conn import eval_many, raw_replies

__all__ = ["Outcome", "Scheduler", "new_token"]

# What a poll leaves behind: feed id, next due time (None: off the schedule),
# fields to store on the feed, the stats counter to increment ('' for none).
Outcome = tuple[str, float | None, Mapping[str, str | int | float], str]

# KEYS[1] schedule; ARGV: now_ms, lease_ms, limit. Returns the ids claimed.
# The leases go in one ZADD per 500 feeds, not a redis.call per feed (#21, decision 163):
# 1-2.5 us of Redis per poll less (most of a ZADD's time is the score's move in the set,
# which stays). The ids are distinct (one range of the set) and all get the same
# score, so the set ends the same.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for s = 1, #ids, 500 do
  local pairs_ = {}
  for j = s, math.min(s + 499, #ids) do
    pairs_[#pairs_ + 1] = until_ms
    pairs_[#pairs_ + 1] = ids[j]
  end
  redis.call('ZADD', KEYS[1], unpack(pairs_))
end
return ids
"""

# KEYS[1] the feed's hash; ARGV: token, field/value pairs. 1 if the lease was ours.
_COMPLETE = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'lease')
if #ARGV > 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
return 1
"""

# One Redis (not a cluster): complete_many's whole batch in one script call (#21).
# KEYS: schedule, stats, then each feed's hash. ARGV: token, then per feed: id,
# next due ms ('' = off the schedule), counter ('' = none), n, then n field/value
# strings; or n = -1 and one string, last_fetch_at, for a plain 304's four fields
# (`PLAIN_304`: 5 arguments instead of 12, decision 157).
# The same lease check per feed as _COMPLETE; 1 per feed if it was ours.
# The schedule's changes go in one ZADD (and one ZREM) per 500 feeds rather than a
# call per feed (#21): a feed is in a batch once (its second outcome would find no
# lease), so the order of the changes does not matter.
_COMPLETE_BATCH = """
local token, a, out, counts, due_pairs, gone = ARGV[1], 2, {}, {}, {}, {}
for i = 3, #KEYS do
  local id, due, counter, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local first = a + 4
  if n < 0 then a = first + 1 else a = first + n end
  if redis.call('HGET', KEYS[i], 'lease') == token then
    redis.call('HDEL', KEYS[i], 'lease')
    if n < 0 then
      redis.call('HSET', KEYS[i], 'last_fetch_at', ARGV[first], 'last_status', '304',
                 'consecutive_errors', '0', 'last_error', '')
    elseif n > 0 then
      redis.call('HSET', KEYS[i], unpack(ARGV, first, first + n - 1))
    end
    if due == '' then
      gone[#gone + 1] = id
    else
      due_pairs[#due_pairs + 1] = due
      due_pairs[#due_pairs + 1] = id
    end
    if counter ~= '' then counts[counter] = (counts[counter] or 0) + 1 end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
for s = 1, #due_pairs, 1000 do
  redis.call('ZADD', KEYS[1], unpack(due_pairs, s, math.min(s + 999, #due_pairs)))
end
for s = 1, #gone, 500 do
  redis.call('ZREM', KEYS[1], unpack(gone, s, math.min(s + 499, #gone)))
end
for counter, count in pairs(counts) do
  redis.call('HINCRBY', KEYS[2], counter, count)
end
return out
"""


PLAIN_304 = ("last_fetch_at", "last_status", "consecutive_errors", "last_error")
"""The fields, in `decide`'s order, of a 304 that changes nothing else on the feed."""


def _plain_304(updates: Mapping[str, str | int | float]) -> bool:
    """Does `updates` write what the batch script's short form writes, in its order:
    last_fetch_at (any text), last_status 304, consecutive_errors 0, last_error ""?
    The values are compared as redis-py would send them, so the stored hash is the same."""
    return (len(updates) == 4 and updates.get("last_status") == 304 and updates.get("consecutive_errors") == 0
            and updates.get("last_error") == "" and tuple(updates) == PLAIN_304
            and isinstance(updates["last_fetch_at"], str) and type(updates["last_status"]) is int
            and type(updates["consecutive_errors"]) is int)


def new_token() -> str:
    """Identifies one daemon process in leases (host, pid, random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Scheduler:
    def __init__(self, redis: aioredis.Redis, keys: Keys, token: str) -> None:
        self.redis = redis
        self.keys = keys
        self.token = token
        self._claim = redis.register_script(_CLAIM)
        self._complete_batch = redis.register_script(_COMPLETE_BATCH)

    async def claim_with_state(
        self, now: float, lease_seconds: float, limit: int
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """Up to `limit` feeds due at `now`, leased to us, each with its stored hash."""
        reply = await self._claim(keys=[self.keys.schedule],
                                  args=[int(now * 1000), int(lease_seconds * 1000), limit])
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in reply]
        if not ids:
            return []
        # The token, then the hash: two plain commands per feed in one pipeline. (A script
        # doing both cost Redis ~12 us of its own per claimed feed, #21; nothing needs the
        # pair atomic: the lease is the schedule's score, the token only guards completion.)
        if self.keys.cluster:
            async with self.redis.pipeline(transaction=False) as pipe:
                for feed_id in ids:
                    key = self.keys.feed(feed_id)
                    pipe.hset(key, "lease", self.token)
                    pipe.hgetall(key)
                replies = await pipe.execute()
            return list(zip(ids, replies[1::2], strict=True))
        # One Redis: the same commands without redis-py's pipeline machinery (#21).
        commands: list[tuple[str, str, str, str] | tuple[str, str]] = []
        for feed_id in ids:
            key = self.keys.feed(feed_id)
            commands += [("HSET", key, "lease", self.token), ("HGETALL", key)]
        replies = await raw_replies(self.redis, commands)
        return [(feed_id, dict(zip(flat[::2], flat[1::2], strict=True)))
                for feed_id, flat in zip(ids, replies[1::2], strict=True)]

    async def claim(self, now: float, lease_seconds: float, limit: int) -> list[str]:
        """Up to `limit` feed ids due at `now`, leased to us for `lease_seconds`."""
        return [feed_id for feed_id, _ in await self.claim_with_state(now, lease_seconds, limit)]

    async def complete(
        self, feed_id: str, next_due: float | None, updates: Mapping[str, str | int | float],
        counter: str = "",
    ) -> bool:
        """Store the outcome and the next due time if we still hold the lease."""
        return (await self.complete_many([(feed_id, next_due, updates, counter)]))[0]

    async def complete_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """complete() for many feeds: per feed, whether the lease was still ours.

        On one Redis, one script call for them all (a script call per feed cost Redis
        ~12 us of its own per poll, #21). On a cluster, whose feed hashes live in other
        slots than the schedule, two round trips whatever their number: the outcomes (a
        script per feed hash, pipelined), then the schedule and the counters of the feeds
        still ours."""
        if not outcomes:
            return []
        if not self.keys.cluster:
            return await self._complete_one_call(outcomes)
        calls: list[tuple[list[str], list[Any]]] = []
        for feed_id, _, updates, _ in outcomes:
            args: list[Any] = [self.token]
            for name, value in updates.items():
                args += [name, value]
            calls.append(([self.keys.feed(feed_id)], args))
        ours = [bool(r) for r in await eval_many(self.redis, _COMPLETE, calls)]
        counts: dict[str, int] = {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for (feed_id, next_due, _, counter), mine in zip(outcomes, ours, strict=True):
                if not mine:
                    continue
                if next_due is None:
                    pipe.zrem(self.keys.schedule, feed_id)
                else:
                    pipe.zadd(self.keys.schedule, {feed_id: int(next_due * 1000)})
                if counter:
                    counts[counter] = counts.get(counter, 0) + 1
            for counter, count in counts.items():
                pipe.hincrby(self.keys.stats, counter, count)
            await pipe.execute()
        return ours

    async def _complete_one_call(self, outcomes: Sequence[Outcome]) -> list[bool]:
        keys: list[str] = [self.keys.schedule, self.keys.stats]
        args: list[Any] = [self.token]
        for feed_id, next_due, updates, counter in outcomes:
            keys.append(self.keys.feed(feed_id))
            due = "" if next_due is None else int(next_due * 1000)
            if _plain_304(updates):
                args += [feed_id, due, counter, -1, updates["last_fetch_at"]]
                continue
            args += [feed_id, due, counter, 2 * len(updates)]
            for name, value in updates.items():
                args += [name, value]
        return [bool(r) for r in await self._complete_batch(keys=keys, args=args)]

    async def release(self, feed_ids: Sequence[str], now: float) -> int:
        """Give back feeds we claimed but did not finish: due again at once."""
        if not feed_ids:
            return 0
        ours = await self.complete_many([(i, now, {}, "") for i in feed_ids])
        return sum(ours)

    async def next_due_in(self, now: float) -> float | None:
        """Seconds until the earliest feed is due (negative: overdue), None if none scheduled."""
        first = await self.redis.zrange(self.keys.schedule, 0, 0, withscores=True)
        if not first:
            return None
        return float(first[0][1]) / 1000 - now
