"""Benchmark: the cost of clustering per item, and what the index holds in Redis.

Measures, on this machine, against a private redis-server (unix socket,
started here and stopped at the end; bounded: a fixed number of rounds):
  1. sketch: shingles + MinHash + bands + sample of one item's text (pure),
     µs of CPU per item
  2. assign: ClusterIndex.assign per document (sketch + the index's round
     trips + the pure decision), µs of the client's CPU per item and round
     trips per document, on a fresh index each round: each fixture feed as one
     document (as the pipeline calls it), and each item as its own document
     (the worst case)
  3. Redis memory per clustered item (used_memory growth over the distinct
     texts, keys with their TTLs), bytes/item
  4. on the wire-copy test sets (tests/data/clusters/wire-*.json), in the
     order written and reversed: same-story pairs split (misses) and
     different-story pairs merged (false merges)
  5. the options weighed for #14 (more MinHash values, other banding, a check
     of candidates by their shingle samples): expected misses and false merges
     on the wire-set pairs (LSH and binomial estimate probabilities from each
     pair's exact Jaccard), and bytes per item from the measured cost of a key

Items: the shared fixture feeds (TEST_FIXTURES_DIR, as for the tests) (306 items in 12 languages, mostly short)
and the wire sets (32 wire-length stories in ko, ja, zh, en).

Run: .venv/bin/python bench/bench_clusters.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import itertools
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.embedded import RedisServer  # noqa: E402
from ingest.keys import Keys  # noqa: E402
from ingest.models import FeedSpec, Item  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from tests.corpus import FEEDS_DIR as FEEDS  # noqa: E402
from tests.wiresets import LANGUAGES, items_of, load  # noqa: E402
from workers.clusters.index import ClusterIndex, sketch_item  # noqa: E402
from workers.clusters.sketch import similarity, threshold_for  # noqa: E402
from workers.normalize.record import normalize_entry  # noqa: E402
from workers.parse import parse_feed_bytes  # noqa: E402


def fixture_documents() -> list[list[Item]]:
    """The items of each fixture feed, as one document each."""
    out: list[list[Item]] = []
    for path in sorted(FEEDS.iterdir()):
        if path.suffix == ".md":
            continue
        url = "https://bench.example/" + path.name
        parsed: Any = parse_feed_bytes(path.read_bytes(), {}, url)
        spec = FeedSpec("bench-" + path.name, url)
        out.append([normalize_entry(e, parsed["feed"], spec, url, "2026-01-01T00:00:00Z")
                    for e in parsed["entries"]])
    return out


def wire_items() -> dict[str, list[tuple[str, Item]]]:
    return {lang: [(w.story, items_of(w)[0]) for w in load(lang)] for lang in LANGUAGES}


def bench_sketch(items: list[Item], rounds: int) -> list[float]:
    """µs of CPU per item, one figure per round."""
    out = []
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            sketch_item(item)
        out.append((time.process_time() - start) / len(items) * 1e6)
    return out


def new_index(client: aioredis.Redis, keys: Keys) -> ClusterIndex:
    return ClusterIndex.from_settings(client, keys, Settings())


def renamed(item: Item, tag: str) -> Item:
    new_id = hashlib.blake2b(f"{tag}:{item.id}".encode(), digest_size=16).hexdigest()
    return dataclasses.replace(item, id=new_id, cluster_id=new_id)


async def bench_assign(
    url: str, documents: list[list[Item]], rounds: int
) -> tuple[list[float], float]:
    """(µs of this process's CPU per item, one figure per round; round trips per
    document). Redis runs in its own process. One `assign` per document, as the
    pipeline calls it."""
    client = aioredis.Redis.from_url(url)
    out = []
    items = sum(len(d) for d in documents)
    trips = 0
    for r in range(rounds):
        await client.flushall()
        await client.config_resetstat()
        index = new_index(client, Keys("bench"))
        batches = [[renamed(i, f"r{r}") for i in d] for d in documents]
        start = time.process_time()
        for batch in batches:
            await index.assign(batch)
        out.append((time.process_time() - start) / items * 1e6)
        stats = await client.info("commandstats")
        trips += sum(v["calls"] for k, v in stats.items()
                     if k in ("cmdstat_mget", "cmdstat_evalsha", "cmdstat_eval"))
    await client.aclose()
    return out, trips / rounds / len(documents)


@dataclasses.dataclass
class Memory:
    per_item: float  # bytes of used_memory per clustered item
    keys: float  # keys per item
    entry: float  # bytes of an item's entry value (cluster id + sample)
    items: int

    @property
    def per_key(self) -> float:
        """What a key costs beyond its value's bytes (name, TTL, dict entries)."""
        return (self.per_item - self.entry - 32 * (self.keys - 1)) / self.keys


async def bench_memory(url: str, items: list[Item]) -> Memory:
    """Redis memory of the index. Only distinct texts count: a repeated text would
    find its band keys taken. The band hashes (#21) are sized as docs/configuration.md
    says, for these few items (~100 bands a hash): the default's 16,384 would make
    this figure mostly per-hash overhead; bench_cluster_index.py measures at scale."""
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    keys = Keys("bench")
    hashes = max(1, len(items) * 24 // 100)
    index = ClusterIndex.from_settings(client, keys, Settings(cluster_index_hashes=hashes))
    before = (await client.info("memory"))["used_memory"]
    sketched = [i for i in items if sketch_item(i) is not None]
    for item in sketched:
        await index.assign([item])
    after = (await client.info("memory"))["used_memory"]
    count = await client.dbsize()
    entries = await client.mget([keys.cluster_entry(bytes.fromhex(i.id)[:8]) for i in sketched])
    await client.aclose()
    entry = sum(len(e or b"") for e in entries) / len(sketched)
    return Memory((after - before) / len(sketched), count / len(sketched), entry, len(sketched))


@dataclasses.dataclass(frozen=True)
class Option:
    """One way of deciding: LSH bands x rows, then the MinHash estimate or the sample check."""

    name: str
    bands: int
    rows: int
    check: bool  # True: candidates checked by the shingle sample; False: by the estimate

    def p_candidate(self, j: float) -> float:
        return float(1 - (1 - j**self.rows) ** self.bands)

    def p_accept(self, j: float, threshold: float) -> float:
        """P(the pair is judged one story | candidate)."""
        if self.check:
            return 1.0 if j >= threshold else 0.0
        k = self.bands * self.rows  # the estimate is Binomial(k, j) / k
        need = math.ceil(threshold * k - 1e-9)
        return float(sum(math.comb(k, m) * j**m * (1 - j) ** (k - m) for m in range(need, k + 1)))

    def memory(self, m: Memory, sample_bytes: float) -> float:
        """Bytes per item: one key per band and the entry (signature or sample)."""
        value = 32 + (sample_bytes if self.check else 4 * self.bands * self.rows)
        return (self.bands + 1) * m.per_key + value + 32 * self.bands


OPTIONS = [
    Option("before #14: 60 values, 20x3, estimate", 20, 3, False),
    Option("120 values, 40x3, estimate", 40, 3, False),
    Option("48 values, 24x2, estimate", 24, 2, False),
    Option("48 values, 24x2, sample check (chosen)", 24, 2, True),
    Option("60 values, 30x2, sample check", 30, 2, True),
    Option("40 values, 20x2, sample check", 20, 2, True),
]


def expected_errors(sets: dict[str, list[tuple[str, Item]]], option: Option) -> tuple[float, float]:
    """(expected same-story pairs split, expected different-story pairs merged) over the
    wire sets, from each pair's exact Jaccard and its threshold (pairwise, no transitivity)."""
    s = Settings()
    misses = merges = 0.0
    for labelled in sets.values():
        sketches = [(story, sketch_item(item)) for story, item in labelled]
        for (sa, a), (sb, b) in itertools.combinations(sketches, 2):
            assert a is not None and b is not None
            j = similarity(a.sample, b.sample)
            t = threshold_for(a.sample, b.sample, s.cluster_threshold, s.cluster_threshold_cjk)
            p = option.p_candidate(j) * option.p_accept(j, t)
            if sa == sb:
                misses += 1 - p
            else:
                merges += p
    return misses, merges


async def wire_quality(url: str, sets: dict[str, list[tuple[str, Item]]]) -> dict[str, str]:
    client = aioredis.Redis.from_url(url)
    out: dict[str, str] = {}
    for lang, labelled in sets.items():
        misses = merges = pairs = 0
        for order in ("written", "reversed"):
            await client.flushall()
            index = new_index(client, Keys("bench"))
            seq = labelled if order == "written" else labelled[::-1]
            clusters = [(story, (await index.assign([item]))[0].cluster_id) for story, item in seq]
            for i, (sa, ca) in enumerate(clusters):
                for sb, cb in clusters[i + 1 :]:
                    pairs += sa == sb
                    misses += sa == sb and ca != cb
                    merges += sa != sb and ca == cb
        out[lang] = f"{misses} of {pairs} same-story pairs split, {merges} false merges"
    await client.aclose()
    return out


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f} µs/item (min {min(values):.1f}, max {max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    documents = fixture_documents()
    fixtures = [item for d in documents for item in d]
    sets = wire_items()
    wire = [item for labelled in sets.values() for _, item in labelled]
    bench_sketch(fixtures + wire, 1)  # warm-up
    print(f"{len(fixtures)} fixture items, {len(wire)} wire items, {args.rounds} rounds")
    print(f"sketch, fixture items:   {spread(bench_sketch(fixtures, args.rounds))}")
    print(f"sketch, wire items:      {spread(bench_sketch(wire, args.rounds))}")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), Path(tmp) / "r.sock", appendonly=False)
        server.start()
        try:
            assign_docs = asyncio.run(bench_assign(server.url, documents, args.rounds))
            assign_fx = asyncio.run(bench_assign(server.url, [[i] for i in fixtures], args.rounds))
            assign_w = asyncio.run(bench_assign(server.url, [[i] for i in wire], args.rounds))
            memory = asyncio.run(bench_memory(server.url, fixtures + wire))
            quality = asyncio.run(wire_quality(server.url, sets))
        finally:
            server.stop()
    chars = statistics.median(len(i.title) + len(i.content_text or i.summary) for i in fixtures)
    wire_chars = statistics.median(len(i.title) + len(i.content_text) for i in wire)
    print(f"  (median text length: fixture items {chars:.0f} characters, wire items "
          f"{wire_chars:.0f})")
    print(f"assign, fixture feeds:   {spread(assign_docs[0])}, {assign_docs[1]:.1f} round "
          "trips per document (one document per feed)")
    print(f"assign, fixture items:   {spread(assign_fx[0])}, {assign_fx[1]:.1f} round trips "
          "per document (one document per item)")
    print(f"assign, wire items:      {spread(assign_w[0])}, {assign_w[1]:.1f} round trips "
          "per document (one document per item)")
    print(f"Redis memory:            {memory.per_item:7.0f} bytes, {memory.keys:.1f} keys per "
          f"clustered item ({memory.items} items; entry {memory.entry:.0f} bytes, "
          f"{memory.per_key:.0f} bytes per key besides its value)")
    for lang, line in quality.items():
        print(f"wire set {lang}:             {line}")
    sample = memory.entry - 32 - 3  # bytes of the sample in the measured entries
    pairs = sum(math.comb(len(v), 2) for v in sets.values())
    print(f"\noptions, on the {pairs} pairs of the wire sets (expected, pairwise) and the "
          "memory model above:")
    for option in OPTIONS:
        misses, merges = expected_errors(sets, option)
        print(f"  {option.name:42} misses {misses:5.2f}  false merges {merges:5.3f}  "
              f"~{option.memory(memory, sample):5.0f} bytes/item")


if __name__ == "__main__":
    main()
