"""Benchmark: parse + normalize + deliver throughput on the shared real feeds.

Measures, on this machine, against a private redis-server on loopback
(started here, stopped at the end; bounded: a fixed number of rounds):
  1. parse only (feedparser, sanitizer off) - items/s
  2. parse + normalize - items/s
  3. cold delivery: process_document on never-seen feeds (parse, normalize, Lua deliver)
  4. warm delivery: the same documents again (everything already seen: hash only)

Run: make bench   (or: .venv/bin/python bench/bench_pipeline.py [--rounds N])
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from ingest.deliver.publish import Deliverer
from ingest.embedded import RedisServer
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from workers.normalize.record import normalize_entry
from workers.parse import parse_feed_bytes
from workers.pipeline import process_document

FEEDS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "feeds"


def load() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(FEEDS.iterdir()) if p.suffix != ".md"]


def bench_parse(docs: list[tuple[str, bytes]], rounds: int, normalize: bool) -> float:
    items = 0
    start = time.perf_counter()
    for _ in range(rounds):
        for name, body in docs:
            parsed: Any = parse_feed_bytes(body, {}, "https://bench.example/" + name)
            if normalize:
                spec = FeedSpec("bench", "https://bench.example/" + name)
                for entry in parsed["entries"]:
                    normalize_entry(entry, parsed["feed"], spec, spec.url, "2026-01-01T00:00:00Z")
            items += len(parsed["entries"])
    return items / (time.perf_counter() - start)


async def bench_deliver(docs: list[tuple[str, bytes]], rounds: int, url: str) -> tuple[float, float]:
    client = aioredis.Redis.from_url(url)
    deliverer = Deliverer(client, Keys("bench"), 1_000_000, 86400)
    cold_items = warm_items = 0
    cold_time = warm_time = 0.0
    for r in range(rounds):
        await client.flushall()
        fetched = [Fetched(f"https://bench.example/{r}/{n}", f"https://bench.example/{r}/{n}", 200, {},
                           body, "2026-01-01T00:00:00Z") for n, body in docs]
        specs = [FeedSpec(f"f{r}-{i}", f.url) for i, f in enumerate(fetched)]
        start = time.perf_counter()
        for spec, f in zip(specs, fetched, strict=True):
            cold_items += (await process_document(deliverer, spec, f)).result.entries
        cold_time += time.perf_counter() - start
        start = time.perf_counter()
        for spec, f in zip(specs, fetched, strict=True):
            warm_items += (await process_document(deliverer, spec, f)).result.entries
        warm_time += time.perf_counter() - start
    await client.aclose()
    return cold_items / cold_time, warm_items / warm_time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    docs = load()
    n_items = sum(len(parse_feed_bytes(b, {}, "https://x/")["entries"]) for _, b in docs)
    print(f"{len(docs)} feeds, {n_items} items per round, {args.rounds} rounds")
    bench_parse(docs, 1, True)  # warm-up: imports, language model
    print(f"parse only:                 {bench_parse(docs, args.rounds, False):8.0f} items/s")
    print(f"parse + normalize:          {bench_parse(docs, args.rounds, True):8.0f} items/s")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), Path(tmp) / "r.sock", appendonly=False)
        server.start()
        try:
            cold, warm = asyncio.run(bench_deliver(docs, args.rounds, server.url))
        finally:
            server.stop()
    print(f"deliver, all new (cold):    {cold:8.0f} items/s")
    print(f"deliver, all seen (warm):   {warm:8.0f} items/s")


if __name__ == "__main__":
    main()
