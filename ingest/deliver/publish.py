"""Delivery: dedup/version check, XADD and PUBLISH as one atomic step in Redis.

One Lua script per feed document handles all of its changed items in a single
round trip (~15 µs of client CPU per item pipelined against ~90 µs for
separate calls). For each item the script compares the stored state with the
version the worker expected:

* same content_hash stored      -> already delivered (a retry, or a duplicate job): skip;
* stored version != expected    -> another worker delivered meanwhile: report a
                                   conflict, the caller re-reads and tries again;
* version would pass the cap    -> remember the new hash, deliver nothing, count it
                                   (`items_version_capped`): content that changes on
                                   every fetch stops being re-delivered;
* otherwise                     -> XADD to the stream, PUBLISH to the channels and
                                   store "version|content_hash|fingerprint", all or nothing.

Because the check and the writes happen inside one script, a retried or
duplicated job can never publish one item version twice, and a crash before
the script leaves nothing written (the job is retried and delivers then).

The hash compared and stored is `state_hash(item)`: the record's content_hash,
marked while the item waits for its article page (`article_status: "pending"`,
#15), so that the item's final state (the article's text, or the feed's text
marked "failed") is a new version even when its text is unchanged.

State per item lives in its own key with a TTL (`item_retention_days`),
refreshed whenever the entry is seen, so memory is bounded by the items seen
within the retention window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import redis.asyncio as aioredis

from ingest.errors import DeliveryConflict
from ingest.keys import Keys
from ingest.models import Item, item_to_json

__all__ = ["ItemState", "Deliverer", "parse_state", "state_hash"]

_DELIVER_LUA = """
local n = tonumber(ARGV[1])
local maxlen, ttl, max_versions = ARGV[2], ARGV[3], tonumber(ARGV[4])
local n_channels = tonumber(ARGV[5])
-- KEYS after the items' state keys: states of entries seen unchanged, whose
-- retention clock restarts here (so a document costs one round trip, not two).
for t = n + 3, #KEYS do
  redis.call('EXPIRE', KEYS[t], ttl)
end
local stream, stats = KEYS[1], KEYS[2]
local out = {}
local new, updated, capped = 0, 0, 0
for i = 1, n do
  local key = KEYS[i + 2]
  local a = 5 + n_channels + (i - 1) * 4
  local expected, chash, fp, json = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local cur = redis.call('GET', key)
  local cur_version, cur_hash = 0, ''
  if cur then
    local s1 = string.find(cur, '|', 1, true)
    local s2 = string.find(cur, '|', s1 + 1, true)
    cur_version = tonumber(string.sub(cur, 1, s1 - 1))
    cur_hash = string.sub(cur, s1 + 1, s2 - 1)
  end
  if cur and cur_hash == chash then
    redis.call('SET', key, cur_version .. '|' .. chash .. '|' .. fp, 'EX', ttl)
    out[i] = 0
  elseif cur_version ~= expected then
    out[i] = -1
  elseif expected >= max_versions then
    -- Content that changes on every fetch (a clock, a rotating ad): remember
    -- the new hash so it is not retried, but deliver no more versions.
    redis.call('SET', key, cur_version .. '|' .. chash .. '|' .. fp, 'EX', ttl)
    out[i] = -2
    capped = capped + 1
  else
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'item', json)
    for c = 1, n_channels do
      redis.call('PUBLISH', ARGV[5 + c], json)
    end
    redis.call('SET', key, (expected + 1) .. '|' .. chash .. '|' .. fp, 'EX', ttl)
    out[i] = expected + 1
    if expected == 0 then new = new + 1 else updated = updated + 1 end
  end
end
if new > 0 then redis.call('HINCRBY', stats, 'items_new', new) end
if updated > 0 then redis.call('HINCRBY', stats, 'items_updated', updated) end
if capped > 0 then redis.call('HINCRBY', stats, 'items_version_capped', capped) end
return out
"""

_MAX_ATTEMPTS = 5
_PENDING_MARK = "~pending"


def state_hash(item: Item) -> str:
    """Pure: the hash delivery dedups on. A version that still waits for its article
    page is not the item's last word: its final state (same text, marked "failed")
    must be delivered as a new version, never skipped as "already delivered"."""
    if item.article_status == "pending":
        return item.content_hash + _PENDING_MARK
    return item.content_hash


@dataclasses.dataclass(frozen=True)
class ItemState:
    """What Redis remembers of an item between fetches."""

    version: int  # last delivered version, 0 when never delivered
    content_hash: str  # content_hash of that version
    fingerprint: str  # raw-entry fingerprint last seen


_NEVER_SEEN = ItemState(0, "", "")


def parse_state(raw: bytes | None) -> ItemState:
    if not raw:
        return _NEVER_SEEN
    try:
        version, content_hash, fingerprint = raw.decode().split("|", 2)
        return ItemState(int(version), content_hash, fingerprint)
    except (ValueError, UnicodeDecodeError):
        return _NEVER_SEEN  # unreadable state: deliver again rather than lose the item


class Deliverer:
    """Reads item states and delivers items for one namespace."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        stream_maxlen: int,
        retention_seconds: int,
        max_versions: int = 1000,
    ):
        self.redis = redis
        self.keys = keys
        self.stream_maxlen = stream_maxlen
        self.retention_seconds = retention_seconds
        self.max_versions = max_versions
        self._script = redis.register_script(_DELIVER_LUA)

    async def states(self, item_ids: Sequence[str]) -> list[ItemState]:
        """One MGET for a whole feed document."""
        if not item_ids:
            return []
        raw = await self.redis.mget([self.keys.item_state(i) for i in item_ids])
        return [parse_state(r) for r in raw]

    async def touch(self, item_ids: Sequence[str]) -> None:
        """Restart the retention clock of entries seen unchanged."""
        if not item_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for item_id in item_ids:
                pipe.expire(self.keys.item_state(item_id), self.retention_seconds)
            await pipe.execute()

    def channels(self, feed_id: str, tags: Sequence[str]) -> list[str]:
        """Every channel an item of this feed is published on."""
        return [self.keys.items_channel, self.keys.feed_channel(feed_id),
                *(self.keys.tag_channel(tag) for tag in tags)]

    async def _run(
        self, feed_id: str, tags: Sequence[str], batch: Sequence[tuple[Item, str]], touch: Sequence[str] = (),
    ) -> list[int]:
        keys = [self.keys.items_stream, self.keys.stats]
        channels = self.channels(feed_id, tags)
        args: list[str | bytes | int] = [
            len(batch), self.stream_maxlen, self.retention_seconds, self.max_versions,
            len(channels), *channels,
        ]
        for item, fingerprint in batch:
            keys.append(self.keys.item_state(item.id))
            args += [item.version - 1, state_hash(item), fingerprint, item_to_json(item)]
        keys += [self.keys.item_state(item_id) for item_id in touch]
        result = await self._script(keys=keys, args=args)
        return [int(r) for r in result]

    async def deliver(
        self,
        feed_id: str,
        candidates: Sequence[tuple[Item, str]],
        expected: Sequence[ItemState],
        tags: Sequence[str] = (),
        touch: Sequence[str] = (),
    ) -> list[Item]:
        """Deliver items (each with its entry fingerprint); return those actually published.

        `expected` is the state each item was normalized against; its version
        + 1 becomes the item's version. On a conflict the state is re-read and
        the item retried with the next version number. `touch`: ids of entries
        seen unchanged, whose retention restarts in the same script call.
        """
        delivered: list[Item] = []
        pending = [
            (dataclasses.replace(item, version=state.version + 1), fp)
            for (item, fp), state in zip(candidates, expected, strict=True)
        ]
        if touch and not pending:
            await self._run(feed_id, tags, [], touch)
        for attempt in range(_MAX_ATTEMPTS):
            if not pending:
                return delivered
            outcome = await self._run(feed_id, tags, pending, touch if attempt == 0 else ())
            conflicts = [pair for pair, code in zip(pending, outcome, strict=True) if code == -1]
            delivered += [item for (item, _), code in zip(pending, outcome, strict=True) if code > 0]
            fresh = await self.states([item.id for item, _ in conflicts])
            pending = [
                (dataclasses.replace(item, version=state.version + 1), fp)
                for (item, fp), state in zip(conflicts, fresh, strict=True)
            ]
        if pending:
            raise DeliveryConflict(
                f"feed {feed_id}: {len(pending)} items kept changing under concurrent delivery"
            )
        return delivered
