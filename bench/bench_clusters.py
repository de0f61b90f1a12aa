"""Benchmark: the cost of clustering per item, and what the index holds in Redis.

Measures, on this machine, against a private redis-server (unix socket,
started here and stopped at the end; bounded: a fixed number of rounds):
  1. sketch: shingles + MinHash + bands + sample of one item's text (pure), µs/item
  2. assign: ClusterIndex.assign per document (sketch + the index's round
     trips + the pure decision), µs/item, on a fresh index each round
  3. Redis memory per clustered item (used_memory growth over the distinct
     texts, keys with their TTLs), bytes/item
  4. on the wire-copy test sets (tests/data/clusters/wire-*.json), in the
     order written and reversed: same-story pairs split (misses) and
     different-story pairs merged (false merges)

Items: the shared fixture feeds (INGEST_TEST_FIXTURES, as for the tests) (306 items in 12 languages, mostly short)
and the wire sets (32 wire-length stories in ko, ja, zh, en).

Run: .venv/bin/python bench/bench_clusters.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
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
from tests.conftest import FEEDS_DIR as FEEDS  # noqa: E402
from tests.wiresets import LANGUAGES, items_of, load  # noqa: E402
from workers.clusters.index import ClusterIndex, sketch_item  # noqa: E402
from workers.normalize.record import normalize_entry  # noqa: E402
from workers.parse import parse_feed_bytes  # noqa: E402


def fixture_items() -> list[Item]:
    out: list[Item] = []
    for path in sorted(FEEDS.iterdir()):
        if path.suffix == ".md":
            continue
        url = "https://bench.example/" + path.name
        parsed: Any = parse_feed_bytes(path.read_bytes(), {}, url)
        spec = FeedSpec("bench-" + path.name, url)
        out += [normalize_entry(e, parsed["feed"], spec, url, "2026-01-01T00:00:00Z")
                for e in parsed["entries"]]
    return out


def wire_items() -> dict[str, list[tuple[str, Item]]]:
    return {lang: [(w.story, items_of(w)[0]) for w in load(lang)] for lang in LANGUAGES}


def bench_sketch(items: list[Item], rounds: int) -> list[float]:
    """µs per item, one figure per round."""
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            sketch_item(item)
        out.append((time.perf_counter() - start) / len(items) * 1e6)
    return out


def new_index(client: aioredis.Redis, keys: Keys) -> ClusterIndex:
    return ClusterIndex.from_settings(client, keys, Settings())


def renamed(item: Item, tag: str) -> Item:
    new_id = hashlib.blake2b(f"{tag}:{item.id}".encode(), digest_size=16).hexdigest()
    return dataclasses.replace(item, id=new_id, cluster_id=new_id)


async def bench_assign(url: str, items: list[Item], rounds: int) -> list[float]:
    """µs per item, one document per item (the worst case: a round trip set per item)."""
    client = aioredis.Redis.from_url(url)
    out = []
    for r in range(rounds):
        await client.flushall()
        index = new_index(client, Keys("bench"))
        batch = [renamed(i, f"r{r}") for i in items]
        start = time.perf_counter()
        for item in batch:
            await index.assign([item])
        out.append((time.perf_counter() - start) / len(batch) * 1e6)
    await client.aclose()
    return out


async def bench_memory(url: str, items: list[Item]) -> tuple[float, float, int]:
    """(bytes of Redis memory per clustered item, keys per item, clustered items).

    Only distinct texts count: a repeated text would find its band keys taken.
    """
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    index = new_index(client, Keys("bench"))
    before = (await client.info("memory"))["used_memory"]
    sketched = [i for i in items if sketch_item(i) is not None]
    for item in sketched:
        await index.assign([item])
    after = (await client.info("memory"))["used_memory"]
    keys = await client.dbsize()
    await client.aclose()
    return (after - before) / len(sketched), keys / len(sketched), len(sketched)


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
    fixtures = fixture_items()
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
            assign_fx = asyncio.run(bench_assign(server.url, fixtures, args.rounds))
            assign_w = asyncio.run(bench_assign(server.url, wire, args.rounds))
            per_item, keys, n = asyncio.run(bench_memory(server.url, fixtures + wire))
            quality = asyncio.run(wire_quality(server.url, sets))
        finally:
            server.stop()
    print(f"assign, fixture items:   {spread(assign_fx)}")
    print(f"assign, wire items:      {spread(assign_w)}")
    print(f"Redis memory:            {per_item:7.0f} bytes, {keys:.1f} keys per clustered item ({n} items)")
    for lang, line in quality.items():
        print(f"wire set {lang}:             {line}")


if __name__ == "__main__":
    main()
