"""The near-duplicate index in Redis, shared by every worker: a thin shell around sketch.py.

Per document, at most three round trips whatever the number of items:

1. one script: each item's own entry (an item keeps its cluster across
   versions), every LSH band of every item looked up in the live time
   buckets, and each band found nowhere claimed for the document's first item
   with it (HSETNX);
2. one MGET: the entries (cluster id + shingle sample) of the candidate items
   those bands point to (at most MAX_CANDIDATES per item), when there are any;
3. one script writing each item's entry (a worker's job sends it in the round
   trip of its delivery: `assign_deferred`, decision 160).

The decision in between is pure (`plan_clusters`): an item joins the cluster
of its most similar candidate at or above the pair's threshold (by script:
`cluster_threshold` for words, `cluster_threshold_cjk` for CJK characters),
else starts its own cluster, whose id is its own item id. Copies within one
document see each other too.

Layout (#21; docs/redis.md has the figures). The bands are fields of small
hashes, `<ns>:cbk:<time bucket>:<shard>`: a band's 64-bit hash picks the
shard (one of `cluster_index_hashes`) and its low 4 bytes are the field; the
value is the 8-byte handle of the first item seen with it (the first 8 bytes
of its id). Small hashes are listpack-encoded (ziplist on Redis 6.2): ~24 B a
band instead of a ~177 B key with a TTL each. A time bucket is half of
`cluster_retention_hours`; its hashes and the entries written in it expire as
wholes when the last reader that must see them is past (`Buckets`), so an
item stays findable for the retention and at most one bucket more, and a
reader looks a band up in the three live buckets. An item's entry is a string
`<ns>:ce:<handle>`: byte 0x03, its cluster id (16 bytes) and its encoded
`Sample`. Handles of 64 bits collide once in ~10^19 pairs of items; the worst
a collision does is to offer a wrong candidate, which its sample then rejects,
or to give an item the cluster of the other.

Each bucket also has a "hashes made" bitmap, `<ns>:cbs:<bucket>` (a bit per
shard, decision 140): a claim asks whether it created its hash (which then
needs its expiry) only while the shard's bit is clear, and a reader skips an
older bucket without one (no band hashes there) unless the bucket is older
than `<ns>:cbv`, the first bucket written with bitmaps.

Before #21 the entries were keyed by the whole item id
(`<ns>:cluster:item:<id>`) and every band was a key of its own (`<ns>:cb:`);
an item's old entry is still read for its own cluster (a correction keeps its
cluster across the upgrade), the old bands are not: they expire within the
retention, and a copy of a story first seen before the upgrade starts a
cluster of its own.

On a Redis Cluster the keys are spread over every node: the reads and the
writes are pipelines split by node instead of the scripts (which need their
keys in one slot), and the new bands are claimed with the entries, after the
decision; the outcome is the same.

Concurrency: two workers that see the first two copies of a story at the
same instant may both start a cluster: the second finds the bands claimed by
the first, but not yet its entry. The window is one round trip wide and costs
only a split cluster; closing it would move the decision into Lua.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.models import Item
from ingest.redis_conn import ScriptCall, is_cluster, mget_any, run_script
from ingest.settings import Settings
from workers.clusters.shingles import fixed_words
from workers.clusters.sketch import (
    Sample,
    Sketch,
    band_candidates,
    choose_cluster,
    sketch_text,
    sketch_texts,
)

__all__ = ["BUCKETS_PER_RETENTION", "Buckets", "ClusterIndex", "Thresholds", "band_slots",
           "plan_clusters", "sketch_item"]

log = logging.getLogger(__name__)

_ID_LENGTH = 32  # item ids are 128-bit hex (ingest.models.short_hash)
HANDLE_BYTES = 8  # an item's handle in the index: the first 8 bytes of its id
# A time bucket is this fraction of the retention: the more, the less an item
# outlives its retention (by one bucket at most), the more buckets a band is
# looked up in (this + 1). 2: kept 48-72 h for 48, three lookups a band.
BUCKETS_PER_RETENTION = 2

# One Redis (a cluster runs the same steps as pipelines): read each item's
# entry and look every band up in the live buckets, oldest first; claim each
# band found nowhere for the document's first item with it (HSETNX into the
# current bucket). The bands travel as one string of 18-byte records (shard: 6
# hex digits, as in the hash's name; field: 4 bytes; handle: 8 bytes) and the
# answer as one string of 8-byte handles (zeros: not found): a few arguments
# per document instead of a hundred per item, as the client's cost is per
# argument. The keys' names are made here from their prefixes, as they cannot
# be declared per slot anyway (the cluster's pipeline path does not use this).
#
# Fewer calls per band (#21, decision 140). Each bucket has a small bitmap,
# "hashes made" (`<ns>:cbs:<bucket>`, a bit per shard), written by the claims:
# (1) a claim checks HLEN = 1 (did it create the hash, which then needs its
# expiry?) only while its shard's bit is clear: about once per hash and bucket
# instead of once per claim, the bitmap read once per document (one GET of
# `shards` / 8 bytes); (2) an older live bucket without the bitmap has no band
# hash, so it is not read at all, unless it is older than `since`, the first
# bucket written with bitmaps (found once: the newest older live bucket with a
# band hash and no bitmap, + 1; stored in `<ns>:cbv`), whose hashes may hold
# bands of before and are read as before.
# KEYS: the items' entries (new keys, then those of before #21); ARGV: hash
# prefix, oldest live bucket, live buckets, expiry (epoch s), the records,
# bitmap prefix, the `since` key, shards.
_READ_LUA = """
local prefix, first, live, at = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local records, mprefix, marker, shards = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local sub, byte, call = string.sub, string.byte, redis.call
local band, shift, floor = bit.band, bit.lshift, math.floor
local current = first + live - 1
local entries = #KEYS > 0 and call('MGET', unpack(KEYS)) or {}

local function any_hash(b)  -- has bucket b a band hash? (once per deployment)
  local names = {}
  for s = 0, shards - 1 do
    names[#names + 1] = string.format('%s%d:%06x', prefix, b, s)
    if #names == 1000 or s == shards - 1 then
      if call('EXISTS', unpack(names)) > 0 then return true end
      names = {}
    end
  end
  return false
end

local since = tonumber(call('GET', marker) or '')
if not since then
  since = first
  for b = current - 1, first, -1 do
    if call('EXISTS', mprefix .. b) == 0 and any_hash(b) then since = b + 1; break end
  end
  call('SET', marker, since)
end

-- The older buckets that may hold bands, oldest first: the first item seen wins.
local older, n = {}, 0
for b = first, current - 1 do
  if b < since or call('EXISTS', mprefix .. b) == 1 then n = n + 1; older[n] = prefix .. b .. ':' end
end
local names, mkey = prefix .. current .. ':', mprefix .. current
local made = call('GET', mkey)
local fresh = {}
local found, none = {}, string.rep('\\0', 8)
for pos = 1, #records, 18 do
  local shard = sub(records, pos, pos + 5)
  local field = sub(records, pos + 6, pos + 9)
  local hit = false
  for b = 1, n do
    hit = call('HGET', older[b] .. shard, field)
    if hit then break end
  end
  if not hit then
    -- The current bucket: claimed if free (one call for a new band), else read.
    local key = names .. shard
    if call('HSETNX', key, field, sub(records, pos + 10, pos + 17)) == 0 then
      hit = call('HGET', key, field)
    else
      if not made then
        call('SETRANGE', mkey, floor((shards - 1) / 8), '\\0')
        call('EXPIREAT', mkey, at)
        made = ''
      end
      local s = tonumber(shard, 16)
      if band(byte(made, floor(s / 8) + 1) or 0, shift(1, 7 - s % 8)) == 0 and not fresh[s] then
        fresh[s] = true
        if call('HLEN', key) == 1 then call('EXPIREAT', key, at) end  -- it expires with its bucket
        call('SETBIT', mkey, s, 1)
      end
    end
  end
  found[#found + 1] = hit or none
end
return {entries, table.concat(found)}
"""

# KEYS: the items' entries; ARGV: expiry (epoch s), their values.
_WRITE_LUA = """
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1 + i], 'EXAT', ARGV[1])
end
return #KEYS
"""


@dataclasses.dataclass(frozen=True)
class Buckets:
    """Time buckets of the index: `width` seconds each; a reader looks in the `live`
    latest ones. Pure.

    What is written in bucket b is read until bucket b + live - 1 ends, and
    expires then: at least `width * (live - 1)` seconds (the retention) after
    it was written, at most `width * live`.
    """

    width: int
    live: int

    @classmethod
    def for_retention(cls, seconds: int) -> Buckets:
        width = max(1, -(-seconds // BUCKETS_PER_RETENTION))
        return cls(width, BUCKETS_PER_RETENTION + 1)

    def current(self, now: float) -> int:
        return int(now // self.width)

    def readable(self, bucket: int) -> range:
        """The buckets a reader in `bucket` looks in, oldest first."""
        return range(bucket - self.live + 1, bucket + 1)

    def expire_at(self, bucket: int) -> int:
        """When what is written in `bucket` is read no more (epoch seconds)."""
        return (bucket + self.live) * self.width


U32 = npt.NDArray[np.uint32]
_BAND = np.dtype([("index", "u1"), ("values", "<u8")])
_RECORD = np.dtype([("shard", "u1", 6), ("field", "<u4"), ("handle", "S8")])
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLES = np.arange(20, -1, -4, dtype=np.uint32)  # 6 hex digits, most significant first
_NONE = bytes(HANDLE_BYTES)
_BAND_MIX = np.uint64(fixed_words("band", 1)[0] | 1)


def band_slots(bands: Sequence[bytes], shards: int) -> tuple[U32, U32]:
    """(shard, field) of each 9-byte band: a 64-bit hash of the band, whose high half
    picks the shard and whose low half is the field (4 bytes little-endian). Pure,
    vectorized.

    The two MinHash values of a band are the smallest shingle ids of their
    bins, so their low bits carry the entropy: they are mixed (SplitMix64's
    finalizer) before being cut.
    """
    if not bands:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint32)
    packed = np.frombuffer(b"".join(bands), dtype=_BAND)
    x = packed["values"] ^ (packed["index"].astype(np.uint64) * _BAND_MIX)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    shard = ((x >> np.uint64(32)) % np.uint64(shards)).astype(np.uint32)
    return shard, (x & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _first_with_band(
    sketches: Sequence[tuple[str, Sketch | None]], handles: Sequence[bytes]
) -> dict[bytes, bytes]:
    """Band -> handle of the document's first item with it: who claims it if it is new."""
    first: dict[bytes, bytes] = {}
    for (_, sketch), handle in zip(sketches, handles, strict=True):
        if sketch is not None:
            for band in sketch.bands:
                first.setdefault(band, handle)
    return first


def _field(value: np.uint32) -> bytes:
    return int(value).to_bytes(4, "little")


def _records(shards: U32, fields: U32, handles: Sequence[bytes]) -> bytes:
    """The bands as the read script takes them: 18 bytes each."""
    records = np.empty(len(handles), dtype=_RECORD)
    records["shard"] = _HEX_DIGITS[(shards[:, None] >> _NIBBLES) & np.uint32(0xF)]
    records["field"] = fields
    records["handle"] = np.frombuffer(b"".join(handles), dtype="S8")
    return records.tobytes()


def sketch_item(item: Item) -> Sketch | None:
    """The sketch of an item's story text: its title and body (or summary)."""
    return sketch_text(_story_text(item))


def _story_text(item: Item) -> str:
    return f"{item.title}\n{item.content_text or item.summary}"


_ENTRY = b"\x03"  # the entry format of #13: raw cluster id, then the sample


def _id_bytes(item_id: str) -> bytes:
    """A 128-bit hex id as its 16 bytes (any other id as it is)."""
    try:
        return bytes.fromhex(item_id) if len(item_id) == _ID_LENGTH else item_id.encode()
    except ValueError:
        return item_id.encode()


def _entry(cluster: str, sample: Sample) -> bytes:
    packed = _id_bytes(cluster)
    if len(packed) != 16:  # not a 128-bit hex id: the format of before #13
        return cluster.encode() + sample.encode()
    return _ENTRY + packed + sample.encode()


def _handle(item_id: str) -> bytes:
    """An item's handle in the index: the first 8 bytes of its 128-bit id (of a hash
    of any other id)."""
    raw = _id_bytes(item_id)
    if len(raw) != 16:
        raw = hashlib.blake2b(raw, digest_size=16).digest()
    return raw[:HANDLE_BYTES]


def _split(raw: bytes | None) -> tuple[str, Sample | None] | None:
    """(cluster id, sample) of a stored entry; the sample is None in an older format."""
    if raw and raw[:1] == _ENTRY and len(raw) > 17:
        return raw[1:17].hex(), Sample.decode(raw[17:])
    if not raw or len(raw) <= _ID_LENGTH:
        return None
    try:
        cluster = raw[:_ID_LENGTH].decode("ascii")
    except UnicodeDecodeError:
        return None
    return cluster, Sample.decode(raw[_ID_LENGTH:])


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Similarity at or above which two items are one story, by script (sketch.threshold_for)."""

    words: float
    characters: float


def plan_clusters(
    items: Sequence[tuple[str, Sketch | None]],
    own: Mapping[str, str],
    hits: Mapping[bytes, str],
    candidates: Mapping[str, tuple[str, Sample]],
    thresholds: Thresholds,
) -> list[str]:
    """The cluster id of each (item id, sketch), in order. Pure.

    `own`: item id -> its stored cluster, for items already in the index (kept);
    `hits`: band -> item id found in the index; `candidates`: item id ->
    (cluster id, sample) for the items the bands point to.
    """
    hits = dict(hits)
    known = dict(candidates)
    out: list[str] = []
    for item_id, sketch in items:
        if sketch is None:
            out.append(own.get(item_id, item_id))
            continue
        if item_id in own:
            cluster = own[item_id]
        else:
            ids = band_candidates(sketch.bands, hits, item_id)
            cluster = (
                choose_cluster(
                    sketch.sample,
                    {i: known[i] for i in ids if i in known},
                    thresholds.words,
                    thresholds.characters,
                )
                or item_id
            )
        out.append(cluster)
        # Later items of the same document see this one.
        known[item_id] = (cluster, sketch.sample)
        for band in sketch.bands:
            hits.setdefault(band, item_id)
    return out


class ClusterIndex:
    """Assigns cluster ids to a document's items against the shared index in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        thresholds: Thresholds,
        ttl_seconds: int,
        shards: int = 16384,
    ):
        self.redis = redis
        self.keys = keys
        self.thresholds = thresholds
        self.ttl = ttl_seconds
        self.buckets = Buckets.for_retention(ttl_seconds)
        self.shards = shards
        self._read_script = redis.register_script(_READ_LUA)
        self.cluster = is_cluster(redis)

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, keys: Keys, settings: Settings) -> ClusterIndex:
        """The index with the thresholds, retention and size of `settings`."""
        thresholds = Thresholds(settings.cluster_threshold, settings.cluster_threshold_cjk)
        return cls(redis, keys, thresholds, settings.cluster_retention_seconds,
                   settings.cluster_index_hashes)

    async def assign(self, items: Sequence[Item], now: float | None = None) -> list[Item]:
        """`items` with their cluster_id set; the index remembers them for later copies.

        `now` (epoch seconds, default the clock) picks the time bucket."""
        assigned, write = await self.assign_deferred(items, now)
        if write is not None:
            await run_script(self.redis, write)
        return assigned

    async def assign_deferred(
        self, items: Sequence[Item], now: float | None = None
    ) -> tuple[list[Item], ScriptCall | None]:
        """`assign` without its last round trip: the items, and the script call writing
        their entries (step 3) for the caller to send in a round trip of its own, the
        delivery's (Deliverer.deliver `before`, decision 160); None when there is nothing
        to write. On a Redis Cluster the entries and the claims are written here, as before
        (a pipeline split by node, not a script call), and None is returned.

        The entries are what later copies of the story and later versions of these items
        are found by: a caller must send the call (it is idempotent: SETs with an expiry)."""
        if not items:
            return [], None
        bucket = self.buckets.current(time.time() if now is None else now)
        sketches = list(zip([item.id for item in items],
                            sketch_texts([_story_text(item) for item in items]), strict=True))
        handles = [_handle(item.id) for item in items]
        first = _first_with_band(sketches, handles)
        bands = sorted(first)
        shards, fields = band_slots(bands, self.shards)
        entry_keys: list[str | bytes] = [self.keys.cluster_entry(h) for h in handles]
        entry_keys += [self.keys.cluster_item(item.id) for item in items]
        if self.cluster:
            entries, found = await self._read_pipelined(entry_keys, bucket, shards, fields)
        else:
            entries, found = await self._read_and_claim(
                entry_keys, bucket, _records(shards, fields, [first[b] for b in bands])
            )
        own: dict[str, str] = {}
        for i, item in enumerate(items):
            entry = _split(entries[i]) or _split(entries[len(items) + i])
            if entry is not None:
                own[item.id] = entry[0]
        batch = {h: item.id for h, item in zip(handles, items, strict=True)}
        hits = {bands[p]: batch.get(raw) or raw.hex() for p, raw in found.items()}
        batch_ids = set(batch.values())
        wanted = sorted({
            i
            for item_id, sketch in sketches
            if sketch is not None and item_id not in own
            for i in band_candidates(sketch.bands, hits, item_id)
            if i not in batch_ids
        })
        candidates = await self._candidates(wanted)
        clusters = plan_clusters(sketches, own, hits, candidates, self.thresholds)
        claims: dict[int, dict[bytes, bytes]] = {}  # the cluster's: shard -> field -> handle
        if self.cluster:
            for p, band in enumerate(bands):
                if p not in found:
                    claims.setdefault(int(shards[p]), {})[_field(fields[p])] = first[band]
        write = await self._remember(sketches, handles, clusters, bucket, claims)
        return [
            dataclasses.replace(item, cluster_id=cluster)
            for item, cluster in zip(items, clusters, strict=True)
        ], write

    async def _candidates(self, wanted: Sequence[str]) -> dict[str, tuple[str, Sample]]:
        """Handle (hex) -> (cluster id, sample) of the candidates that have an entry."""
        candidates: dict[str, tuple[str, Sample]] = {}
        if wanted:
            stored = await mget_any(
                self.redis, [self.keys.cluster_entry(bytes.fromhex(i)) for i in wanted]
            )
            for wanted_id, r in zip(wanted, stored, strict=True):
                entry = _split(r)
                if entry is not None and entry[1] is not None:
                    candidates[wanted_id] = (entry[0], entry[1])
        return candidates

    async def _read_and_claim(
        self, entry_keys: Sequence[str | bytes], bucket: int, records: bytes
    ) -> tuple[list[bytes | None], dict[int, bytes]]:
        """One Redis: (the entries under `entry_keys`; band position -> handle of the first
        item seen with it), the bands found nowhere claimed, in one script."""
        readable = self.buckets.readable(bucket)
        entries, handles = await self._read_script(
            keys=list(entry_keys),
            args=[self.keys.cluster_bands_prefix, readable[0], len(readable),
                  self.buckets.expire_at(bucket), records, self.keys.cluster_hashes_made_prefix,
                  self.keys.cluster_bands_since, self.shards],
        )
        found = {
            p: handles[at : at + HANDLE_BYTES]
            for p, at in enumerate(range(0, len(handles), HANDLE_BYTES))
            if handles[at : at + HANDLE_BYTES] != _NONE
        }
        return list(entries), found

    async def _read_pipelined(
        self, entry_keys: Sequence[str | bytes], bucket: int, shards: U32, fields: U32
    ) -> tuple[list[bytes | None], dict[int, bytes]]:
        """A Redis Cluster: the same reads as the script, split by node (the claims are
        written after the decision, in `_remember`)."""
        entries = await mget_any(self.redis, entry_keys)
        groups: dict[int, list[int]] = {}  # shard -> positions in `bands`
        for p, shard in enumerate(shards.tolist()):
            groups.setdefault(shard, []).append(p)
        readable = self.buckets.readable(bucket)
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, positions in groups.items():
                for b in readable:
                    pipe.hmget(self.keys.cluster_bands(b, shard), [_field(fields[p]) for p in positions])
            replies = cast(list[list[bytes | None]], await pipe.execute())
        found: dict[int, bytes] = {}
        at = 0
        for positions in groups.values():
            for _ in readable:  # oldest first: the first item seen with the band
                for p, value in zip(positions, replies[at], strict=True):
                    if value and p not in found:
                        found[p] = value
                at += 1
        return entries, found

    async def _remember(
        self,
        sketches: Sequence[tuple[str, Sketch | None]],
        handles: Sequence[bytes],
        clusters: Sequence[str],
        bucket: int,
        claims: Mapping[int, Mapping[bytes, bytes]],
    ) -> ScriptCall | None:
        """The entries' write: on one Redis the script call (for the caller to send), on a
        cluster written here with the new bands' claims (None)."""
        entries: list[bytes] = []
        values: list[bytes] = []
        for (_, sketch), handle, cluster in zip(sketches, handles, clusters, strict=True):
            if sketch is not None:
                entries.append(self.keys.cluster_entry(handle))
                values.append(_entry(cluster, sketch.sample))
        if not entries:
            return None
        at = self.buckets.expire_at(bucket)
        if not self.cluster:
            return _WRITE_LUA, entries, [at, *values]
        async with self.redis.pipeline(transaction=False) as pipe:  # split by node
            for entry_key, value in zip(entries, values, strict=True):
                pipe.set(entry_key, value, exat=at)
            for shard, pairs in claims.items():
                key = self.keys.cluster_bands(bucket, shard)
                for field, handle in pairs.items():
                    pipe.hsetnx(key, field, handle)  # type: ignore[arg-type]
                pipe.expireat(key, at)
            await pipe.execute()
        return None
