"""Atomic claims on the schedule: any number of daemons, no feed fetched twice.

Feeds wait in the sorted set `<ns>:schedule`, scored by when they are next
due (epoch milliseconds). Claiming is one Lua script: take up to N due feeds
and, in the same step, move each one's score to now + lease and write the
claimant's token into the feed's hash. That moved score *is* the lease: if
the daemon dies, the feed simply comes due again when the lease runs out and
another daemon claims it. Completing is a second script that stores the
fetch's outcome and the next due time only if the token is still ours, so a
daemon that stalled past its lease cannot overwrite the newer claimant's work.

Feed hash keys are built inside the scripts from a prefix, so these scripts
are for a single Redis (or a primary), not Redis Cluster.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis

from ingest.keys import Keys

__all__ = ["Outcome", "Scheduler", "new_token"]

# What a poll leaves behind: feed id, next due time (None: off the schedule),
# fields to store on the feed, the stats counter to increment ('' for none).
Outcome = tuple[str, float | None, Mapping[str, str | int | float], str]

# Returns {id1, {field, value, ...}, id2, {...}}: the claimed feeds with their
# hashes, so a poll needs no further read.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], until_ms, id)
  redis.call('HSET', ARGV[5] .. id, 'lease', ARGV[4])
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', ARGV[5] .. id)
end
return out
"""

# KEYS[1] schedule, KEYS[2] stats; ARGV: id, token, next_due_ms (-1: leave the
# schedule), prefix, counter to increment ('' for none), field/value pairs...
_COMPLETE = """
local key = ARGV[4] .. ARGV[1]
if redis.call('HGET', key, 'lease') ~= ARGV[2] then return 0 end
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[5], 1) end
if tonumber(ARGV[3]) >= 0 then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('HDEL', key, 'lease')
for i = 6, #ARGV, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
return 1
"""

# The same for many feeds at once. KEYS[1] schedule, KEYS[2] stats; ARGV: token,
# prefix, then per feed: id, next_due_ms, counter, n (field/value pairs), pairs...
# Returns 1/0 per feed, in order.
_COMPLETE_MANY = """
local token, prefix = ARGV[1], ARGV[2]
local out = {}
local i = 3
while i <= #ARGV do
  local id, due, counter, n = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
  local key = prefix .. id
  if redis.call('HGET', key, 'lease') == token then
    if counter ~= '' then redis.call('HINCRBY', KEYS[2], counter, 1) end
    if due >= 0 then redis.call('ZADD', KEYS[1], due, id) else redis.call('ZREM', KEYS[1], id) end
    redis.call('HDEL', key, 'lease')
    for j = 0, n - 1 do
      redis.call('HSET', key, ARGV[i + 4 + 2 * j], ARGV[i + 5 + 2 * j])
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  i = i + 4 + 2 * n
end
return out
"""

# KEYS[1] schedule; ARGV: now_ms, token, prefix, ids...
_RELEASE = """
local n = 0
for i = 4, #ARGV do
  local key = ARGV[3] .. ARGV[i]
  if redis.call('HGET', key, 'lease') == ARGV[2] then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    redis.call('HDEL', key, 'lease')
    n = n + 1
  end
end
return n
"""


def new_token() -> str:
    """Identifies one daemon process in leases (host, pid, random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Scheduler:
    def __init__(self, redis: aioredis.Redis, keys: Keys, token: str) -> None:
        self.redis = redis
        self.keys = keys
        self.token = token
        self._claim = redis.register_script(_CLAIM)
        self._complete = redis.register_script(_COMPLETE)
        self._release = redis.register_script(_RELEASE)
        self._complete_many = redis.register_script(_COMPLETE_MANY)

    async def claim_with_state(
        self, now: float, lease_seconds: float, limit: int
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """Up to `limit` feeds due at `now`, leased to us, each with its stored hash."""
        reply = await self._claim(
            keys=[self.keys.schedule],
            args=[int(now * 1000), int(lease_seconds * 1000), limit, self.token, self.keys.feed("")],
        )
        out: list[tuple[str, dict[bytes, bytes]]] = []
        for raw_id, flat in zip(reply[::2], reply[1::2], strict=True):
            feed_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            out.append((feed_id, dict(zip(flat[::2], flat[1::2], strict=True))))
        return out

    async def claim(self, now: float, lease_seconds: float, limit: int) -> list[str]:
        """Up to `limit` feed ids due at `now`, leased to us for `lease_seconds`."""
        return [feed_id for feed_id, _ in await self.claim_with_state(now, lease_seconds, limit)]

    async def complete(
        self, feed_id: str, next_due: float | None, updates: Mapping[str, str | int | float],
        counter: str = "",
    ) -> bool:
        """Store the outcome and the next due time if we still hold the lease (one round trip)."""
        args: list[str | int | float] = [
            feed_id, self.token, -1 if next_due is None else int(next_due * 1000), self.keys.feed(""),
            counter,
        ]
        for name, value in updates.items():
            args += [name, value]
        return bool(await self._complete(keys=[self.keys.schedule, self.keys.stats], args=args))

    async def complete_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """complete() for many feeds in one round trip; per feed, whether the lease was still ours."""
        if not outcomes:
            return []
        args: list[str | int | float] = [self.token, self.keys.feed("")]
        for feed_id, next_due, updates, counter in outcomes:
            args += [feed_id, -1 if next_due is None else int(next_due * 1000), counter, len(updates)]
            for name, value in updates.items():
                args += [name, value]
        reply = await self._complete_many(keys=[self.keys.schedule, self.keys.stats], args=args)
        return [bool(r) for r in reply]

    async def release(self, feed_ids: Sequence[str], now: float) -> int:
        """Give back feeds we claimed but did not finish: due again at once."""
        if not feed_ids:
            return 0
        args: list[str | int] = [int(now * 1000), self.token, self.keys.feed(""), *feed_ids]
        return int(await self._release(keys=[self.keys.schedule], args=args))

    async def next_due_in(self, now: float) -> float | None:
        """Seconds until the earliest feed is due (negative: overdue), None if none scheduled."""
        first = await self.redis.zrange(self.keys.schedule, 0, 0, withscores=True)
        if not first:
            return None
        return float(first[0][1]) / 1000 - now
