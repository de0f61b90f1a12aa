"""Delivery: dedup/version check, then the stream and the channels, never twice.

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
* otherwise                     -> store the new state and emit the record.

On one Redis, "emit" is XADD to the stream and PUBLISH to the channels inside
the same script: all or nothing, so a retried or duplicated job can never
publish one item version twice, and a crash before the script leaves nothing
written (the job is retried and delivers then).

The hash compared and stored is `state_hash(item)`: the record's content_hash,
marked while the item waits for its article page (`article_status: "pending"`,
#15), so that the item's final state (the article's text, or the feed's text
marked "failed") is a new version even when its text is unchanged.

On a Redis Cluster (#13) the feed's state and the stream live in different
slots, so "emit" appends the record to the feed's outbox (a list in the feed's
slot) in the same script, and a second script, in the stream's slot, appends
the outbox to the stream. Outbox entries are numbered (`#seq` in the state
hash, with an `#epoch` that changes if the hash is ever recreated), and the
stream's slot remembers per feed the last number appended
(`<ns>:items` positions hash, written in the same script as the XADDs), so an
entry appended once is skipped when a retry or a concurrent worker flushes the
outbox again: nothing twice. The outbox is trimmed only after the append was
acknowledged and, with `WAIT`, copied to a replica, so a crash or a failover
between the steps loses nothing: the next flush of that feed (the job's retry,
or the feed's next document) appends what is left. Pub/Sub (SPUBLISH) and the
counters follow the append, best effort, for the entries that call appended.

State per item is a field of the feed's hash (ingest/deliver/state.py), with
its last-seen day; the script drops fields unseen for `item_retention_days`
once a day per feed, and the hash expires that long after the feed's last
delivery, so memory is bounded by the items seen within the retention window.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Collection, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import PipelineCommand, RedisCluster
from redis.exceptions import RedisError

from ingest.deliver.state import (
    ItemState,
    day_of,
    digest8,
    field_of,
    pack_state,
    parse_legacy,
    parse_state,
)
from ingest.deliver.streamcodec import DEFAULT_STREAM_RECORD, DICT_ID, decode_item, dictionary, encode_item
from ingest.errors import DeliveryConflict
from ingest.keys import Keys
from ingest.models import Item, item_to_json
from ingest.redis_conn import ScriptCall, is_cluster, run_script, run_scripts

__all__ = ["ItemState", "Deliverer", "parse_state", "state_hash"]

# KEYS[1] the feed's state hash, KEYS[2] the stream (one Redis) or the feed's
# outbox (cluster), KEYS[3] stats (one Redis). ARGV: n, maxlen, hash ttl,
# max_versions, today, oldest day kept, n_channels, channels..., then per item
# field, expected version, content digest, fingerprint digest, the stream's `item`
# value (ingest/deliver/streamcodec.py), the record's JSON for the channels ('' when
# the same bytes); then the fields of entries seen unchanged, whose day is restarted here.
_DELIVER_LUA = """
local n = tonumber(ARGV[1])
local maxlen, ttl, max_versions = ARGV[2], ARGV[3], tonumber(ARGV[4])
local today, oldest = tonumber(ARGV[5]), tonumber(ARGV[6])
local n_channels = tonumber(ARGV[7])
local seen = KEYS[1]
local day = string.char(math.floor(today / 256) % 256, today % 256)
local function day_of(v) return string.byte(v, 1) * 256 + string.byte(v, 2) end
if redis.call('HGET', seen, '#pruned') ~= ARGV[5] then
  -- Once a day per feed: forget items not seen within the retention.
  local all = redis.call('HGETALL', seen)
  for i = 1, #all, 2 do
    if #all[i] == 16 and day_of(all[i + 1]) < oldest then redis.call('HDEL', seen, all[i]) end
  end
  redis.call('HSET', seen, '#pruned', ARGV[5])
end
local first_item = 8 + n_channels
for t = first_item + n * 6, #ARGV do
  local cur = redis.call('HGET', seen, ARGV[t])
  if cur then redis.call('HSET', seen, ARGV[t], day .. string.sub(cur, 3)) end
end
local out = {}
local new, updated, capped = 0, 0, 0
for i = 1, n do
  local a = first_item + (i - 1) * 6
  local field, expected, chash, fp, json = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local pub = ARGV[a + 5]
  if pub == '' then pub = json end
  local cur = redis.call('HGET', seen, field)
  local cur_version, cur_hash = 0, ''
  if cur then
    cur_version = tonumber(string.sub(cur, 19)) or 0
    cur_hash = string.sub(cur, 3, 10)
  end
  if cur and cur_hash == chash then
    redis.call('HSET', seen, field, day .. chash .. fp .. cur_version)
    out[i] = 0
  elseif cur_version ~= expected then
    out[i] = -1
  elseif expected >= max_versions then
    -- Content that changes on every fetch (a clock, a rotating ad): remember
    -- the new hash so it is not retried, but deliver no more versions.
    redis.call('HSET', seen, field, day .. chash .. fp .. cur_version)
    out[i] = -2
    capped = capped + 1
  else
    EMIT
    redis.call('HSET', seen, field, day .. chash .. fp .. (expected + 1))
    out[i] = expected + 1
    if expected == 0 then new = new + 1 else updated = updated + 1 end
  end
end
redis.call('EXPIRE', seen, ttl)
FINISH
"""

_EMIT_DIRECT = """redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'item', json)
    for c = 1, n_channels do
      redis.call('PUBLISH', ARGV[7 + c], pub)
    end"""
_FINISH_DIRECT = """if new > 0 then redis.call('HINCRBY', KEYS[3], 'items_new', new) end
if updated > 0 then redis.call('HINCRBY', KEYS[3], 'items_updated', updated) end
if capped > 0 then redis.call('HINCRBY', KEYS[3], 'items_version_capped', capped) end
return out"""

# Cluster: the record goes to the feed's outbox, numbered; the reply carries the
# whole outbox (leftovers of an interrupted flush included) for the append.
_EMIT_OUTBOX = """redis.call('RPUSH', KEYS[2], json)
    redis.call('HINCRBY', seen, '#seq', 1)"""
_FINISH_OUTBOX = """local epoch = redis.call('HGET', seen, '#epoch')
if not epoch then
  local t = redis.call('TIME')
  epoch = t[1] .. t[2]
  redis.call('HSET', seen, '#epoch', epoch)
end
local seq = tonumber(redis.call('HGET', seen, '#seq') or '0')
local box = redis.call('LRANGE', KEYS[2], 0, -1)
if #box > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
return {out, {new, updated, capped}, epoch, seq - #box + 1, box}"""

# In the stream's slot. KEYS[1] stream, KEYS[2] positions hash; ARGV: feed id,
# maxlen, epoch, number of the first record, records... Returns the indexes
# (1-based) of the records appended now.
_APPEND_LUA = """
local pos = 0
local mark = redis.call('HGET', KEYS[2], ARGV[1])
if mark then
  local at = string.find(mark, ':', 1, true)
  if string.sub(mark, 1, at - 1) == ARGV[3] then pos = tonumber(string.sub(mark, at + 1)) end
end
local first = tonumber(ARGV[4])
local added = {}
for i = 5, #ARGV do
  if first + i - 5 > pos then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'item', ARGV[i])
    added[#added + 1] = i - 4
  end
end
local last = first + #ARGV - 5
if last > pos then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ':' .. last) end
return added
"""

# In the feed's slot. KEYS[1] state hash, KEYS[2] outbox; ARGV[1] last number
# appended. Drops the outbox entries up to it (another flush may have dropped some).
_TRIM_LUA = """
local seq = tonumber(redis.call('HGET', KEYS[1], '#seq') or '0')
local len = redis.call('LLEN', KEYS[2])
local drop = tonumber(ARGV[1]) - (seq - len + 1) + 1
if drop >= len then
  redis.call('DEL', KEYS[2])
elseif drop > 0 then
  redis.call('LTRIM', KEYS[2], drop, -1)
end
return drop
"""

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 5
_PENDING_MARK = "~pending"


def state_hash(item: Item) -> str:
    """Pure: the hash delivery dedups on. A version that still waits for its article
    page is not the item's last word: its final state (same text, marked "failed")
    must be delivered as a new version, never skipped as "already delivered"."""
    if item.article_status == "pending":
        return item.content_hash + _PENDING_MARK
    return item.content_hash


# Replicas that must hold an append before the outbox lets go of it, and how long to
# wait for them (ms); past that the outbox is trimmed anyway (a cluster may have none).
_WAIT_REPLICAS = 1
_WAIT_MS = 1000


class Deliverer:
    """Reads item states and delivers items for one namespace (one Redis or a cluster)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        stream_maxlen: int,
        retention_seconds: int,
        max_versions: int = 1000,
        stream_record: str = DEFAULT_STREAM_RECORD,
    ):
        self.redis = redis
        self.keys = keys
        self.stream_maxlen = stream_maxlen
        self.retention_seconds = retention_seconds
        self.retention_days = max(1, -(-retention_seconds // 86400))
        self.max_versions = max_versions
        self.stream_record = stream_record  # "json" or "zstd": the stream's `item` value
        self._dictionary_due = 0.0 if stream_record == "zstd" else float("inf")
        self.cluster = is_cluster(redis)
        if self.cluster:
            self._text = _DELIVER_LUA.replace("EMIT", _EMIT_OUTBOX).replace("FINISH", _FINISH_OUTBOX)
            self._trim = redis.register_script(_TRIM_LUA)
        else:
            self._text = _DELIVER_LUA.replace("EMIT", _EMIT_DIRECT).replace("FINISH", _FINISH_DIRECT)
        self._script = redis.register_script(self._text)

    async def states(self, feed_id: str, item_ids: Sequence[str],
                     in_hash: Collection[str] = ()) -> list[ItemState]:
        """One HMGET for a whole feed document (on one Redis, with the keys of before #13).

        `in_hash`: ids whose state the feed's hash held when they were last confirmed (the
        entries' map says so, workers/rawseen.py). Their keys of before #13 are not read:
        a state found in the hash makes that key unused, and a caller that finds one of
        them missing from the hash reads again without `in_hash` (workers/pipeline.py)."""
        if not item_ids:
            return []
        seen = self.keys.item_states(feed_id)
        fields = [field_of(i) for i in item_ids]
        old_keys = [i for i in item_ids if i not in in_hash] if not self.cluster else []
        if not old_keys:
            raw_states: list[bytes | None] = await self.redis.hmget(seen, fields)  # type: ignore[misc]
            return [parse_state(r) for r in raw_states]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(seen, fields)
            pipe.mget([self.keys.item_state(i) for i in old_keys])
            raw, found = await pipe.execute()
        if len(old_keys) == len(item_ids):
            legacy = found
        else:
            olds = iter(found)
            legacy = [None if i in in_hash else next(olds) for i in item_ids]
        states = [parse_state(r) for r in raw]
        if any(old and not r for r, old in zip(raw, legacy, strict=True)):
            await self._migrate(feed_id, item_ids, fields, raw, legacy)
            states = [s if r else parse_legacy(old) for s, r, old in zip(states, raw, legacy, strict=True)]
        return states

    async def _migrate(self, feed_id: str, item_ids: Sequence[str], fields: Sequence[bytes],
                       raw: Sequence[bytes | None], legacy: Sequence[bytes | None]) -> None:
        """Move states of before #13 (a key per item) into the feed's hash, once each.

        HSETNX: a state a concurrent delivery has just written wins over the old one."""
        today = day_of(time.time())
        seen = self.keys.item_states(feed_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for item_id, field, r, old in zip(item_ids, fields, raw, legacy, strict=True):
                state = parse_legacy(old)
                if r or not old or not state.version:
                    continue
                packed = pack_state(state.version, state.content_hash, state.fingerprint, today)
                pipe.hsetnx(seen, field, packed)  # type: ignore[arg-type]
                pipe.delete(self.keys.item_state(item_id))
            pipe.expire(seen, self._hash_ttl)
            await pipe.execute()

    @property
    def _hash_ttl(self) -> int:
        return self.retention_seconds + 86400

    def channels(self, feed_id: str, tags: Sequence[str]) -> list[str]:
        """Every channel an item of this feed is published on."""
        return [self.keys.items_channel, self.keys.feed_channel(feed_id),
                *(self.keys.tag_channel(tag) for tag in tags)]

    async def _run(
        self, feed_id: str, tags: Sequence[str], batch: Sequence[tuple[Item, str]], touch: Sequence[str] = (),
        before: Sequence[ScriptCall] = (),
    ) -> list[int]:
        today = day_of(time.time())
        channels = [] if self.cluster else self.channels(feed_id, tags)
        args: list[str | bytes | int] = [
            len(batch), self.stream_maxlen, self._hash_ttl, self.max_versions,
            today, today - self.retention_days, len(channels), *channels,
        ]
        for item, fingerprint in batch:
            record = item_to_json(item)
            value = encode_item(record, self.stream_record)
            # The channels' JSON: not when the stream carries it already, nor on a cluster
            # (the outbox's records are published after the append, decompressed there).
            args += [field_of(item.id), item.version - 1, digest8(state_hash(item)), digest8(fingerprint),
                     value, b"" if value is record or self.cluster else record]
        if batch and time.monotonic() >= self._dictionary_due:
            await self._share_dictionary()
        args += [field_of(item_id) for item_id in touch]
        seen = self.keys.item_states(feed_id)
        if not self.cluster:
            script_keys = [seen, self.keys.items_stream, self.keys.stats]
            if not before:
                result = await self._script(keys=script_keys, args=args)
                return [int(r) for r in result]
            *ahead, result = await run_scripts(self.redis, [*before, (self._text, script_keys, args)],
                                               raise_on_error=False)
            if isinstance(result, Exception):
                raise result  # nothing delivered: the job's retry sends all of it again
            await self._settle(feed_id, before, ahead)
            return [int(r) for r in result]
        for call in before:  # other slots: one by one, before the delivery as on one Redis
            await run_script(self.redis, call)
        codes, counts, epoch, first, box = await self._script(keys=[seen, self.keys.outbox(feed_id)], args=args)
        await self._flush(feed_id, tags, epoch, int(first), box, [int(c) for c in counts])
        return [int(r) for r in codes]

    async def _settle(self, feed_id: str, calls: Sequence[ScriptCall], results: Sequence[Any]) -> None:
        """The `before` calls that failed in the delivery's round trip, run once more alone.

        The delivery ran and stands: raising now would retry the job, whose retry finds
        its items delivered and would neither send these calls again nor note what it
        delivered (counters, follow-ups, the feed's outcome). They are idempotent, so a
        second try is safe; a failure is logged and counted (`deferred_write_errors`),
        and one that fails again too (`deferred_writes_lost`) is left at that."""
        for call, result in zip(calls, results, strict=True):
            if not isinstance(result, Exception):
                continue
            counter = "deferred_write_errors"
            try:
                await run_script(self.redis, call)
                log.warning("feed %s: a write sent with the delivery failed (%s); done again alone",
                            feed_id, result)
            except RedisError as again:
                counter = "deferred_writes_lost"
                log.error("feed %s: a write sent with the delivery failed (%s) and again alone (%s); "
                          "the items are delivered without it", feed_id, result, again)
            try:
                await self.redis.hincrby(self.keys.stats, counter, 1)  # type: ignore[misc]
            except RedisError:
                log.exception("feed %s: %s not counted", feed_id, counter)

    async def _share_dictionary(self) -> None:
        """The dictionary of the stream's zstd frames into Redis, for consumers that do not
        ship it (docs/consumers.md), before the first frame; then hourly, in case the key was
        deleted or evicted. SET NX: it is immutable, never overwritten."""
        await self.redis.set(self.keys.record_dictionary(DICT_ID), dictionary(DICT_ID), nx=True)
        self._dictionary_due = time.monotonic() + 3600

    async def _flush(self, feed_id: str, tags: Sequence[str], epoch: bytes, first: int,
                     box: Sequence[bytes], counts: Sequence[int]) -> None:
        """Cluster: append the feed's outbox to the stream (skipping what is there already),
        wait for a replica, trim the outbox; then publish and count (best effort)."""
        added: list[int] = []
        if box:
            added = await self._append(feed_id, epoch, first, box)
            await self._trim(keys=[self.keys.item_states(feed_id), self.keys.outbox(feed_id)],
                             args=[first + len(box) - 1])
        new, updated, capped = counts
        if not (added or new or updated or capped):
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for index in added:
                for channel in self.channels(feed_id, tags):
                    pipe.execute_command("SPUBLISH", channel, decode_item(box[index - 1]))
            for name, count in (("items_new", new), ("items_updated", updated), ("items_version_capped", capped)):
                if count:
                    pipe.hincrby(self.keys.stats, name, count)
            await pipe.execute()

    async def _append(self, feed_id: str, epoch: bytes, first: int, box: Sequence[bytes]) -> list[int]:
        """The append script and WAIT on one connection of the stream's master (WAIT counts
        the replicas holding this connection's writes)."""
        cluster = cast(RedisCluster, self.redis)
        stream, positions = self.keys.items_stream, self.keys.delivery_positions
        node = cluster.get_node_from_key(stream)
        if node is None:
            raise DeliveryConflict(f"no master holds the slot of {stream} now (a failover?)")
        commands = [
            PipelineCommand(0, "EVAL", _APPEND_LUA, 2, stream, positions, feed_id, self.stream_maxlen,
                            epoch, first, *box),
            PipelineCommand(1, "WAIT", _WAIT_REPLICAS, _WAIT_MS),
        ]
        await node.execute_pipeline(commands)
        for command in commands:
            if isinstance(command.result, BaseException):
                raise command.result
        return [int(i) for i in cast(list[Any], commands[0].result)]

    async def deliver(
        self,
        feed_id: str,
        candidates: Sequence[tuple[Item, str]],
        expected: Sequence[ItemState],
        tags: Sequence[str] = (),
        touch: Sequence[str] = (),
        before: Sequence[ScriptCall] = (),
    ) -> list[Item]:
        """Deliver items (each with its entry fingerprint); return those actually published.

        `expected` is the state each item was normalized against; its version
        + 1 becomes the item's version. On a conflict the state is re-read and
        the item retried with the next version number. `touch`: ids of entries
        seen unchanged, whose retention restarts in the same script call.

        `before`: idempotent script calls (the cluster index's entries, decision 160) sent
        ahead of the first delivery script in its round trip on one Redis, one by one
        before it on a cluster. When the delivery fails they may have run (harmless:
        idempotent); when one of them fails and the delivery ran, it is run once more
        alone, logged and counted (`_settle`), and the delivery's outcome is returned.
        """
        delivered: list[Item] = []
        pending = [
            (dataclasses.replace(item, version=state.version + 1), fp)
            for (item, fp), state in zip(candidates, expected, strict=True)
        ]
        if (touch or self.cluster) and not pending:
            # On a cluster also when there is nothing to deliver: the feed's outbox may
            # hold what an interrupted delivery (this job's first try) left behind.
            await self._run(feed_id, tags, [], touch, before)
        elif before and not pending:
            await run_scripts(self.redis, before)
        for attempt in range(_MAX_ATTEMPTS):
            if not pending:
                return delivered
            first = attempt == 0  # a conflict's retry neither touches nor writes `before` again
            outcome = await self._run(feed_id, tags, pending, touch if first else (), before if first else ())
            conflicts = [pair for pair, code in zip(pending, outcome, strict=True) if code == -1]
            delivered += [item for (item, _), code in zip(pending, outcome, strict=True) if code > 0]
            fresh = await self.states(feed_id, [item.id for item, _ in conflicts])
            pending = [
                (dataclasses.replace(item, version=state.version + 1), fp)
                for (item, fp), state in zip(conflicts, fresh, strict=True)
            ]
        if pending:
            raise DeliveryConflict(
                f"feed {feed_id}: {len(pending)} items kept changing under concurrent delivery"
            )
        return delivered

