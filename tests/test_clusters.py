"""Near-duplicate clustering: the seed story's copies share a cluster, other stories do not.

Test data (tests/data/clusters/, written for these tests from the seed story):
  edited-headline.xml       another outlet, another headline, the repeated paragraphs once
  paragraph-added.xml       one paragraph added at the end, date in KST
  paragraphs-dropped.xml    two of ten paragraphs cut, no dc:creator
  different-credit.xml      "(Xinhua)" instead of "(Yonhap)", byline "By Yonhap" in the text
  json-combined-edits.json  JSON Feed: new headline, one paragraph cut, one added, "(AFP)"
  same-topic-other-stories.xml  four different defense-talks stories, one of them a
                            follow-up that reuses three of the seed's paragraphs verbatim
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ingest.deliver.publish import Deliverer
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched, Item, feed_id_for_url
from ingest.settings import Settings
from tests.conftest import DATA_DIR
from workers.clusters.index import (
    Buckets,
    ClusterIndex,
    Thresholds,
    band_slots,
    plan_clusters,
    sketch_item,
)
from workers.clusters.shingles import shingle_ids, shingles
from workers.clusters.sketch import (
    MIN_SHINGLES,
    Sketch,
    _signature,
    similarity,
    sketch_text,
    sketch_texts,
    threshold_for,
)
from workers.normalize.record import normalize_entry
from workers.parse import parse_feed_bytes
from workers.pipeline import process_document

CLUSTERS = DATA_DIR / "clusters"
SEED = DATA_DIR / "seed-yonhap.xml"
VARIANTS = [
    CLUSTERS / n
    for n in (
        "edited-headline.xml",
        "paragraph-added.xml",
        "paragraphs-dropped.xml",
        "different-credit.xml",
        "json-combined-edits.json",
    )
]
OTHERS = CLUSTERS / "same-topic-other-stories.xml"
THRESHOLD = Settings().cluster_threshold
THRESHOLDS = Thresholds(THRESHOLD, Settings().cluster_threshold_cjk)


def items_of(path: Path) -> list[Item]:
    url = f"http://feeds.example/{path.name}"
    parsed: Any = parse_feed_bytes(path.read_bytes(), {}, url)
    spec = FeedSpec(feed_id_for_url(url), url)
    return [
        normalize_entry(e, parsed["feed"], spec, url, "2026-01-01T00:00:00Z")
        for e in parsed["entries"]
    ]


def text_of(item: Item) -> str:
    return f"{item.title}\n{item.content_text}"


def jaccard(a: Item, b: Item) -> float:
    left, right = shingles(text_of(a)), shingles(text_of(b))
    return len(left & right) / len(left | right)


def sketched(item: Item) -> Sketch:
    sketch = sketch_item(item)
    assert sketch is not None, item.title
    return sketch


# --- the measurements behind the threshold (README "Normalization") -------------------


def test_every_copy_of_the_seed_story_is_above_the_threshold() -> None:
    [seed] = items_of(SEED)
    for path in VARIANTS:
        [copy] = items_of(path)
        exact = jaccard(seed, copy)
        checked = similarity(sketched(seed).sample, sketched(copy).sample)
        assert exact >= 0.7, (path.name, exact)
        assert checked == pytest.approx(exact)  # short texts: the sample is the whole set
        assert threshold_for(sketched(seed).sample, sketched(copy).sample, 0.5, 0.35) == 0.5
        assert checked >= THRESHOLD, (path.name, checked)


def test_different_stories_on_the_same_topic_are_far_below_it() -> None:
    [seed] = items_of(SEED)
    others = items_of(OTHERS)
    assert len(others) == 4
    everyone = [seed, *(items_of(p)[0] for p in VARIANTS)]
    for other in others:
        for item in everyone:
            assert jaccard(other, item) < 0.25, (other.title, item.title)
            checked = similarity(sketched(other).sample, sketched(item).sample)
            assert checked < THRESHOLD - 0.2, (other.title, item.title, checked)
    # The follow-up reusing three paragraphs is the hardest case, and still far off.
    assert max(jaccard(others[3], item) for item in everyone) > 0.1


def test_sketches_are_deterministic_and_short_texts_have_none() -> None:
    [seed] = items_of(SEED)
    assert sketch_item(seed) == sketch_item(items_of(SEED)[0])
    assert sketch_text("Breaking: storm hits coast") is None  # fewer than MIN_SHINGLES
    assert len(shingles("one two three four five six seven eight nine ten")) == MIN_SHINGLES
    # CJK text has no spaces: characters are the tokens.
    assert sketch_text("韩中两国国防部在首尔举行第十八次工作级国防政策会谈") is not None


def test_plan_joins_the_most_similar_candidate_and_keeps_an_items_cluster() -> None:
    [seed] = items_of(SEED)
    [copy] = items_of(VARIANTS[0])
    [other, *_] = items_of(OTHERS)
    seed_sketch, copy_sketch, other_sketch = (sketched(i) for i in (seed, copy, other))
    # Nothing in the index: every item starts its own cluster, except copies in the same batch.
    batch = [(seed.id, seed_sketch), (other.id, other_sketch), (copy.id, copy_sketch)]
    assert plan_clusters(batch, {}, {}, {}, THRESHOLDS) == [seed.id, other.id, seed.id]
    # The seed is in the index under cluster "c1": the copy finds it through a band.
    hits = {band: seed.id for band in seed_sketch.bands}
    known = {seed.id: ("c1" * 16, seed_sketch.sample)}
    assert plan_clusters([(copy.id, copy_sketch)], {}, hits, known, THRESHOLDS) == ["c1" * 16]
    assert plan_clusters([(other.id, other_sketch)], {}, hits, known, THRESHOLDS) == [other.id]
    # Found through a band but below the threshold: no merge (the check, not the band, decides).
    hits = {band: other.id for band in copy_sketch.bands}
    known = {other.id: ("c3" * 16, other_sketch.sample)}
    assert plan_clusters([(copy.id, copy_sketch)], {}, hits, known, THRESHOLDS) == [copy.id]
    # An item already in the index keeps its cluster, whatever its new text looks like.
    own = {other.id: "c2" * 16}
    assert plan_clusters([(other.id, seed_sketch)], own, hits, known, THRESHOLDS) == ["c2" * 16]
    # Too short to sketch: its own cluster.
    assert plan_clusters([("x" * 32, None)], {}, {}, {}, THRESHOLDS) == ["x" * 32]


# --- the shared index in Redis, through the real pipeline ------------------------------



def _fetched(path: Path, body: bytes | None = None) -> tuple[FeedSpec, Fetched]:
    url = f"http://feeds.example/{path.name}"
    spec = FeedSpec(feed_id_for_url(url), url)
    return spec, Fetched(url, url, 200, {}, body or path.read_bytes(), "2026-01-01T00:00:00Z")


async def _deliver(client: aioredis.Redis, settings: Settings, paths: list[Path]) -> list[Item]:
    keys = Keys(settings.namespace)
    deliverer = Deliverer(client, keys, settings.stream_maxlen, 3600)
    index = ClusterIndex.from_settings(client, keys, settings)
    out: list[Item] = []
    for path in paths:
        spec, fetched = _fetched(path)
        out += (await process_document(deliverer, spec, fetched, index)).delivered
    return out


@pytest.mark.parametrize("order", ["seed first", "seed last"])
async def test_copies_from_different_feeds_share_one_cluster_and_others_do_not(
    settings: Settings, client: aioredis.Redis, order: str
) -> None:
    paths = [SEED, *VARIANTS, OTHERS]
    if order == "seed last":
        paths = paths[::-1]
    items = await _deliver(client, settings, paths)
    assert len(items) == 1 + len(VARIANTS) + 4
    assert len({i.feed_id for i in items}) == len(paths)
    copies = [i for i in items if i.feed_url.rsplit("/", 1)[-1] != OTHERS.name]
    others = [i for i in items if i.feed_url.rsplit("/", 1)[-1] == OTHERS.name]
    [cluster] = {i.cluster_id for i in copies}
    first = copies[0]
    assert cluster == first.id  # a cluster is named after the first copy seen
    assert len({i.cluster_id for i in others}) == 4
    assert all(i.cluster_id == i.id for i in others)


async def test_an_updated_item_keeps_its_cluster_and_the_index_expires(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    [seed, copy] = await _deliver(client, settings, [SEED, VARIANTS[0]])
    assert copy.cluster_id == seed.cluster_id == seed.id
    # The copy is corrected (a paragraph rewritten): version 2, same cluster.
    body = (
        VARIANTS[0]
        .read_bytes()
        .replace(
            b"Currently, Seoul and Beijing maintain one such line",
            b"At present the two capitals keep a single line",
        )
    )
    deliverer = Deliverer(client, keys, settings.stream_maxlen, 3600)
    index = ClusterIndex.from_settings(client, keys, settings)
    spec, fetched = _fetched(VARIANTS[0], body)
    [updated] = (await process_document(deliverer, spec, fetched, index)).delivered
    assert (updated.id, updated.version, updated.cluster_id) == (copy.id, 2, seed.id)
    # Every index key expires, after the retention and at most one time bucket more:
    # memory is bounded and an item stays findable for the whole retention.
    retention, width = settings.cluster_retention_seconds, index.buckets.width
    entries = await client.keys(f"{settings.namespace}:ce:*")
    assert len(entries) == 2  # the two items' entries
    hashes = await client.keys(f"{settings.namespace}:cbk:*")  # and their bands' hashes
    assert hashes
    for key in entries + hashes:
        ttl = await client.ttl(key)
        assert retention - 5 <= ttl <= retention + width, key
    for key in hashes:  # small hashes: compact encoding (ziplist before Redis 7)
        assert await client.object("encoding", key) in (b"listpack", b"ziplist"), key


async def test_an_item_is_found_for_the_retention_and_not_one_bucket_after(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    index = ClusterIndex.from_settings(client, keys, settings)
    [seed] = items_of(SEED)
    copies = [items_of(path)[0] for path in VARIANTS[:2]]
    start = 1_800_000_000.0
    bucket = index.buckets.current(start)
    last = (bucket + index.buckets.live) * index.buckets.width - 1  # its buckets' last second
    assert last - start >= settings.cluster_retention_seconds
    await index.assign([seed], now=start)
    [found] = await index.assign([copies[0]], now=last)
    assert found.cluster_id == seed.id
    [late] = await index.assign([copies[1]], now=last + 1)
    assert late.cluster_id == copies[1].id  # the seed's bucket is read no more


def test_a_documents_sketches_at_once_equal_each_items_own() -> None:
    """MinHash over a whole document (one search for every item) gives each item the
    sketch it gets alone, short texts (empty bins, densified) and CJK included."""
    texts = [text_of(i) for path in [SEED, *VARIANTS, OTHERS] for i in items_of(path)]
    words = " ".join(texts).split()
    texts += [" ".join(words[i : i + n]) for i, n in ((0, 3), (5, 9), (40, 14), (90, 30))]
    texts += ["서울에서 큰 화재가 발생했다 소방당국은", "東京都内で大規模な火災が発生しました", ""]
    together = sketch_texts(texts)
    assert together == [sketch_text(t) for t in texts]
    assert None in together and sum(s is not None for s in together) >= len(texts) - 4
    for text, sketch in zip(texts, together, strict=True):  # against one item's MinHash
        if sketch is not None:
            alone = _signature(shingle_ids(text)).astype("<u4").tobytes()
            assert b"".join(band[1:] for band in sketch.bands) == alone


def test_buckets_cover_the_retention_and_a_band_maps_to_one_slot() -> None:
    buckets = Buckets.for_retention(48 * 3600)
    assert (buckets.width, buckets.live) == (24 * 3600, 3)
    for now in (0.0, 1_800_000_000.0, 1_800_000_000.0 + 86_399):
        b = buckets.current(now)
        assert now + 48 * 3600 <= buckets.expire_at(b) <= now + 72 * 3600
        assert list(buckets.readable(b + 2)) == [b, b + 1, b + 2]
    bands = list(sketched(items_of(SEED)[0]).bands)
    shards, fields = (a.tolist() for a in band_slots(bands, 4096))
    assert [a.tolist() for a in band_slots(bands, 4096)] == [shards, fields]
    assert all(0 <= s < 4096 for s in shards) and all(0 <= f < 1 << 32 for f in fields)
    assert len(set(zip(shards, fields, strict=True))) == len(bands)
    # Fixed constants: every process on every machine puts a band in the same place.
    assert [a.tolist() for a in band_slots([bytes(range(9))], 4096)] == [[1059], [3176208647]]


async def test_one_document_costs_a_bounded_number_of_round_trips(
    settings: Settings, client: aioredis.Redis
) -> None:
    await _deliver(client, settings, [SEED])  # something to find
    await client.config_resetstat()
    await _deliver(client, settings, [OTHERS, VARIANTS[0]])
    stats = await client.info("commandstats")
    # Per document: one MGET of item states, at most two against the cluster index.
    # (GETs and SETs inside the delivery script also count in commandstats, so only
    # the client-side MGETs are a measure of round trips here.)
    assert 2 <= stats["cmdstat_mget"]["calls"] <= 2 * 3


async def test_entries_of_before_keep_their_cluster_and_old_bands_are_not_read(
    settings: Settings, client: aioredis.Redis
) -> None:
    """An entry written before #14 (cluster id + 60-value signature) under the key of
    before #21 still gives its item's cluster."""
    keys = Keys(settings.namespace)
    [seed] = items_of(SEED)
    [copy] = items_of(VARIANTS[0])
    old_signature = bytes(range(240))
    await client.set(keys.cluster_item(seed.id), b"c" * 32 + old_signature)
    sketch = sketched(seed)
    for band in sketch.bands:  # even a band pointing at it finds no usable sample
        await client.set(keys.cluster_band_packed(band), seed.id)
    index = ClusterIndex.from_settings(client, keys, settings)
    [again] = await index.assign([seed])
    assert again.cluster_id == "c" * 32  # its cluster, from the old entry
    # The entry is rewritten in the new format: copies find it from now on.
    [found] = await index.assign([copy])
    assert found.cluster_id == "c" * 32
    # The bands of before #21 are not read (they age out): a copy of a story seen only
    # before the upgrade starts a cluster of its own.
    await client.flushdb()
    await client.set(keys.cluster_item(seed.id), b"d" * 32 + old_signature)
    [other] = items_of(VARIANTS[1])
    for band in sketched(other).bands:
        await client.set(keys.cluster_band_packed(band), seed.id)
    [alone] = await index.assign([other])
    assert alone.cluster_id == other.id
