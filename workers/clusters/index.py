"""The near-duplicate index in Redis, shared by every worker: a thin shell around sketch.py.

Per document, at most three round trips whatever the number of items:

1. one MGET: each item's own entry (an item keeps its cluster across
   versions) and every LSH band key of every item;
2. one MGET: the entries (cluster id + shingle sample) of the candidate items
   those bands point to (at most MAX_CANDIDATES per item), when there are any;
3. one small Lua script writing each item's entry and each band key that is
   not taken yet (SET NX), all with the `cluster_retention_hours` TTL. (A
   pipeline of ~20 SETs per item cost ~150 µs of client CPU per item; one
   script call with the same arguments costs a fraction of that.)

The decision in between is pure (`plan_clusters`): an item joins the cluster
of its most similar candidate at or above the pair's threshold (by script:
`cluster_threshold` for words, `cluster_threshold_cjk` for CJK characters),
else starts its own cluster, whose id is its own item id. Copies within one
document see each other too.

An item's entry is byte 0x03, its cluster id (16 bytes) and its encoded
`Sample`; an entry of before #13 (the cluster id in 32 hex characters, then
the sample or a MinHash signature) still gives its item's cluster. A band key
is 9 bytes after the prefix (band index, its two MinHash values) and holds the
16-byte id of the first item seen with it (#13: ~24 keys per item, so every
byte of theirs counts; docs/redis.md has the figures).

On a Redis Cluster the keys are spread over every node: the reads are split
by slot (`mget_any`) and the writes are one pipeline of SETs instead of the
script (which needs its keys in one slot); the outcome is the same, SET NX
per band.

Concurrency: two workers that see the first two copies of a story at the
same instant may both start a cluster; the band keys are set with NX, so the
first writer owns them and later copies join its cluster. Reading and writing
in one Lua script would close that window, but would move the decision into
Lua; the window is one round trip wide and costs only a split cluster.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.models import Item
from ingest.redis_conn import is_cluster, mget_any
from ingest.settings import Settings
from workers.clusters.sketch import Sample, Sketch, band_candidates, choose_cluster, sketch_text

__all__ = ["ClusterIndex", "Thresholds", "plan_clusters", "sketch_item"]

log = logging.getLogger(__name__)

_ID_LENGTH = 32  # item ids are 128-bit hex (ingest.models.short_hash)

# KEYS: n item entries, then band keys; ARGV: ttl, n, then one value per key.
_REMEMBER_LUA = """
local ttl, n = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS do
  if i <= n then
    redis.call('SET', KEYS[i], ARGV[2 + i], 'EX', ttl)
  else
    redis.call('SET', KEYS[i], ARGV[2 + i], 'EX', ttl, 'NX')
  end
end
return #KEYS
"""


def sketch_item(item: Item) -> Sketch | None:
    """The sketch of an item's story text: its title and body (or summary)."""
    return sketch_text(f"{item.title}\n{item.content_text or item.summary}")


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


def _item_id(raw: bytes) -> str:
    return raw.hex() if len(raw) == 16 else raw.decode("ascii", "replace")


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
        self, redis: aioredis.Redis, keys: Keys, thresholds: Thresholds, ttl_seconds: int
    ):
        self.redis = redis
        self.keys = keys
        self.thresholds = thresholds
        self.ttl = ttl_seconds
        self._remember_script = redis.register_script(_REMEMBER_LUA)
        self.cluster = is_cluster(redis)

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, keys: Keys, settings: Settings) -> ClusterIndex:
        """The index with the thresholds and retention of `settings`."""
        thresholds = Thresholds(settings.cluster_threshold, settings.cluster_threshold_cjk)
        return cls(redis, keys, thresholds, settings.cluster_retention_seconds)

    async def assign(self, items: Sequence[Item]) -> list[Item]:
        """`items` with their cluster_id set; the index remembers them for later copies."""
        if not items:
            return []
        sketches = [(item.id, sketch_item(item)) for item in items]
        bands = sorted({b for _, s in sketches if s for b in s.bands})
        item_keys = [self.keys.cluster_item(item.id) for item in items]
        raw = await mget_any(self.redis, [*item_keys, *(self.keys.cluster_band_packed(b) for b in bands)])
        own = {
            item.id: entry[0]
            for item, r in zip(items, raw, strict=False)
            if (entry := _split(r)) is not None
        }
        hits = {
            band: _item_id(r)
            for band, r in zip(bands, raw[len(items) :], strict=True)
            if r
        }
        batch = {item.id for item in items}
        wanted = sorted({
            i
            for item_id, sketch in sketches
            if sketch is not None and item_id not in own
            for i in band_candidates(sketch.bands, hits, item_id)
            if i not in batch
        })
        candidates: dict[str, tuple[str, Sample]] = {}
        if wanted:
            found = await mget_any(self.redis, [self.keys.cluster_item(i) for i in wanted])
            for i, r in zip(wanted, found, strict=True):
                entry = _split(r)
                if entry is not None and entry[1] is not None:
                    candidates[i] = (entry[0], entry[1])
        clusters = plan_clusters(sketches, own, hits, candidates, self.thresholds)
        await self._remember(sketches, clusters, hits)
        return [
            dataclasses.replace(item, cluster_id=cluster)
            for item, cluster in zip(items, clusters, strict=True)
        ]

    async def _remember(
        self,
        sketches: Sequence[tuple[str, Sketch | None]],
        clusters: Sequence[str],
        hits: Mapping[bytes, str],
    ) -> None:
        entries: list[str] = []
        bands: dict[bytes, bytes] = {}
        values: list[bytes] = []
        for (item_id, sketch), cluster in zip(sketches, clusters, strict=True):
            if sketch is None:
                continue
            entries.append(self.keys.cluster_item(item_id))
            values.append(_entry(cluster, sketch.sample))
            for band in sketch.bands:
                if band not in hits:
                    bands.setdefault(self.keys.cluster_band_packed(band), _id_bytes(item_id))
        if not entries:
            return
        if self.cluster:  # keys of every slot: a pipeline, split by node
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value in zip(entries, values, strict=True):
                    pipe.set(key, value, ex=self.ttl)
                for band_key, first in bands.items():
                    pipe.set(band_key, first, ex=self.ttl, nx=True)
                await pipe.execute()
            return
        await self._remember_script(
            keys=[*entries, *bands],
            args=[self.ttl, len(entries), *values, *bands.values()],
        )
