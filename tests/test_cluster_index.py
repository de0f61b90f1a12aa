"""The cluster index's bookkeeping per time bucket (#21, decision 140), and its results
against the plain index.

Each bucket has a "hashes made" bitmap (`<ns>:cbs:<bucket>`): a claim checks
whether it created its band hash (which then needs its expiry) only while its
shard's bit is clear, and an older bucket without the bitmap is not read at
all, unless it is older than the first bucket written with bitmaps
(`<ns>:cbv`), whose hashes may hold bands of before. The plain index is the
same code's Redis Cluster path (pipelines reading every live bucket, no
bitmaps), run here against the one Redis; the shingles of a document at once
are checked against a plain shingler written from the docstring's rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time

import numpy as np
import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ingest.keys import Keys
from ingest.models import Item
from ingest.settings import Settings
from workers.clusters import shingles as sh
from workers.clusters.index import ClusterIndex, band_slots, sketch_item

START = 1_800_000_000.0  # a fixed clock: the buckets are those of this instant and after
_WORDS = [f"w{n}" for n in range(3000)]
_TEMPLATE = Item(
    id="0" * 32, version=1, feed_id="f", feed_url="http://feeds.example/f", feed_title="f",
    url=None, link=None, guid=None, title="", authors=[], published_at=None, updated_at=None,
    fetched_at="2026-01-01T00:00:00Z", summary="", content_html="", content_text="",
    language=None, categories=[], enclosures=[], content_hash="", cluster_id="",
)


def item(n: int, text: str) -> Item:
    """Item number `n` (a 128-bit hex id of its own) with `text` as its story."""
    item_id = hashlib.blake2b(f"item:{n}".encode(), digest_size=16).hexdigest()
    return dataclasses.replace(_TEMPLATE, id=item_id, title=f"story {n}", content_text=text)


def story(rng: random.Random) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(40, 160)))


def copy_of(text: str, rng: random.Random) -> str:
    """A near-duplicate: one word in twenty replaced."""
    words = text.split()
    for at in rng.sample(range(len(words)), len(words) // 20):
        words[at] = rng.choice(_WORDS)
    return " ".join(words)


def documents(seed: int, count: int = 12, per_document: int = 8) -> list[list[Item]]:
    """Documents of new stories and copies of earlier ones (a third of the items)."""
    rng = random.Random(seed)
    texts: list[str] = []
    out: list[list[Item]] = []
    for _ in range(count):
        document = []
        for _ in range(per_document):
            text = copy_of(rng.choice(texts), rng) if texts and rng.random() < 0.35 else story(rng)
            texts.append(text)
            document.append(item(len(texts), text))
        out.append(document)
    return out


async def expires_at(client: aioredis.Redis, key: str | bytes) -> float:
    """When `key` expires (epoch seconds; EXPIRETIME is Redis 7's only)."""
    ttl = await client.pttl(key)
    assert ttl > 0, key
    return time.time() + ttl / 1000


def index_of(client: aioredis.Redis, settings: Settings, shards: int = 64) -> ClusterIndex:
    keys = Keys(settings.namespace)
    return ClusterIndex(client, keys, ClusterIndex.from_settings(client, keys, settings).thresholds,
                        settings.cluster_retention_seconds, shards)


async def test_every_key_expires_and_the_bitmap_names_the_hashes_made(
    settings: Settings, client: aioredis.Redis
) -> None:
    await client.flushdb()
    index = index_of(client, settings)
    keys = index.keys
    for document in documents(1, count=4):
        await index.assign(document, now=START)
    bucket = index.buckets.current(START)
    at = index.buckets.expire_at(bucket)
    hashes = await client.keys(keys.cluster_bands(bucket, 0)[:-6] + "*")
    assert len(hashes) > 32
    made = await client.get(keys.cluster_hashes_made(bucket))
    assert made is not None
    bits = np.unpackbits(np.frombuffer(made, dtype=np.uint8))  # SETBIT's order: MSB first
    assert sorted(int(k.rsplit(b":", 1)[1], 16) for k in hashes) == np.flatnonzero(bits).tolist()
    for key in [*hashes, keys.cluster_hashes_made(bucket).encode()]:
        assert await expires_at(client, key) == pytest.approx(at, abs=2), key
    # The first bucket with bitmaps: this one's oldest live bucket (a new index), kept.
    assert int(await client.get(keys.cluster_bands_since) or 0) == bucket - index.buckets.live + 1
    assert await client.ttl(keys.cluster_bands_since) == -1
    # Lost bitmap (evicted): a hash a claim creates still gets its expiry.
    await client.delete(keys.cluster_hashes_made(bucket), *hashes)
    await index.assign(documents(2, count=2)[0], now=START)
    again = await client.keys(keys.cluster_bands(bucket, 0)[:-6] + "*")
    assert again
    for key in [*again, keys.cluster_hashes_made(bucket).encode()]:
        assert await expires_at(client, key) == pytest.approx(at, abs=2), key


async def test_a_band_is_found_across_rolled_buckets_for_the_retention(
    settings: Settings, client: aioredis.Redis
) -> None:
    index = index_of(client, settings)
    rng = random.Random(3)
    text = story(rng)
    width, bucket = index.buckets.width, index.buckets.current(START)
    for step in (0, 1, 2, 3):
        await client.flushdb()
        [seed] = await index.assign([item(1, text)], now=START)
        [copy] = await index.assign([item(2, copy_of(text, rng))], now=START + step * width)
        # Found while the seed's bucket is live (two buckets on), then no more.
        assert (copy.cluster_id == seed.id) == (step < index.buckets.live), step
        assert await client.exists(index.keys.cluster_hashes_made(bucket)) == 1
        # The copy's own new bands went to its bucket, which made its own bitmap.
        assert await client.exists(index.keys.cluster_hashes_made(bucket + step)) == 1


async def test_an_older_bucket_is_read_only_when_it_may_hold_bands(
    settings: Settings, client: aioredis.Redis
) -> None:
    """Bands written before the bitmaps (no bitmap) are read; a bucket from the first
    one with bitmaps on that has none holds no bands and is not read."""
    rng = random.Random(4)
    text = story(rng)
    seed = item(1, text)

    async def plant(index: ClusterIndex, bucket: int) -> None:
        """The seed's bands and entry as the code of before wrote them: no bitmap."""
        sketch = sketch_item(seed)
        assert sketch is not None
        shards, fields = band_slots(list(sketch.bands), index.shards)
        handle = bytes.fromhex(seed.id)[:8]
        for shard, field in zip(shards.tolist(), fields.tolist(), strict=True):
            await client.hsetnx(index.keys.cluster_bands(bucket, shard),
                                field.to_bytes(4, "little"), handle)  # type: ignore[arg-type]
        await client.set(index.keys.cluster_entry(handle),
                         b"\x03" + bytes.fromhex(seed.id) + sketch.sample.encode())

    await client.flushdb()
    index = index_of(client, settings)
    bucket = index.buckets.current(START)
    await plant(index, bucket - 1)  # an index of before the upgrade
    [copy] = await index.assign([item(2, copy_of(text, rng))], now=START)
    assert copy.cluster_id == seed.id
    assert int(await client.get(index.keys.cluster_bands_since) or 0) == bucket

    await client.flushdb()
    [other] = await index.assign([item(3, story(rng))], now=START)  # a new index
    assert other.cluster_id == other.id
    await plant(index, bucket - 1)  # hashes without a bitmap after the bitmaps began
    [unseen] = await index.assign([item(4, copy_of(text, rng))], now=START)
    assert unseen.cluster_id == unseen.id  # not read: such a bucket holds nothing


@pytest.mark.parametrize("seed", [5, 6, 7])
async def test_results_equal_the_plain_index(
    settings: Settings, client: aioredis.Redis, seed: int
) -> None:
    """Generated documents, spread over four buckets: the script path with its bitmaps
    gives every item the cluster the plain index (every live bucket read, band by
    band) gives it."""
    results: dict[bool, list[str]] = {}
    for plain in (False, True):
        await client.flushdb()
        index = index_of(client, settings, shards=16)
        index.cluster = plain
        width = index.buckets.width
        out = []
        for number, document in enumerate(documents(seed, count=16)):
            now = START + (number * 4 // 16) * width
            out += [i.cluster_id for i in await index.assign(document, now=now)]
        results[plain] = out
    assert results[False] == results[True]
    joined = sum(c != i.id for c, i in zip(results[False], sum(documents(seed, count=16), []),
                                           strict=True))
    assert joined >= 10  # copies were found, across documents and buckets


# --- the shingles of a document at once, against a plain shingler -------------------


def plain_shingle_ids(text: str) -> tuple[list[int], float]:
    """The rules of workers/clusters/shingles.py, one code point at a time."""
    mask = (1 << 64) - 1
    codes = sh._codes(text).tolist()
    kinds = [int(sh._CLASS[min(c, sh._PLANE)]) for c in codes]
    tokens: list[int] = []
    cjk = 0
    previous = sh._OTHER
    for code, kind in zip(codes, kinds, strict=True):
        if kind == sh._OTHER:
            previous = kind
            continue
        if previous == sh._OTHER or kind == sh._CJK_CHAR or previous == sh._CJK_CHAR:
            tokens.append(0)
            position = 0
        cjk += kind == sh._CJK_CHAR
        tokens[-1] = (tokens[-1] + code * int(sh._POSITION[position])) & mask
        position += 1
        previous = kind
    if not tokens:
        return [], 0.0
    share = cjk / len(tokens)
    tokens += [0] * max(0, sh.SHINGLE_SIZE - len(tokens))
    join = [int(w) for w in sh._JOIN]
    ids = set()
    for at in range(len(tokens) - sh.SHINGLE_SIZE + 1):
        x = sum(t * w for t, w in zip(tokens[at : at + sh.SHINGLE_SIZE], join, strict=True)) & mask
        x = ((x ^ (x >> 29)) * int(sh._MIX)) & mask
        ids.add(x >> 32)
    return sorted(ids), share


_TEXT = st.text(alphabet=st.sampled_from(list("ab Zé.,_1\n東京화재３İ😀ß")), max_size=60)


@hypothesis_settings(max_examples=150, deadline=None)
@given(st.lists(_TEXT, max_size=6))
def test_shingles_of_texts_at_once_equal_the_plain_shingler(texts: list[str]) -> None:
    sets = sh.shingle_sets(texts)
    assert len(sets.offsets) == len(texts) + 1
    for number, text in enumerate(texts):
        ids, share = plain_shingle_ids(text)
        assert sets.ids(number).tolist() == ids, text
        assert sets.shares[number] == pytest.approx(share), text
