"""Benchmark: Redis memory of the item stream per 100k items, JSON against zstd, in one run.

Against a private redis-server on loopback (the binary the embedded default
ships; started here, stopped at the end; bounded by --items and 300 s a fill):
real item records, parsed, normalized and delivered by the product's own code,
of two kinds:

  fixtures  every item of the shared fixture feeds (../shared/fixtures/feeds:
            twelve real publishers, eight languages), ~3.3 KB of JSON each;
  farm      the benchmark farm's items (bench/farm.py, what bench/suite.py
            stores), ~7.4 KB each: the text comes three times (HTML, text, summary).

For each kind, the stream `<ns>:items` is filled with --items entries as the
delivery script writes them (XADD MAXLEN ~, field `item`), once per
`stream_record` setting, alternating (json, zstd, json, zstd): `used_memory`
growth and MEMORY USAGE, per 100k entries, and the server's CPU per XADD
(INFO cpu: copying a 1 KB value instead of 3-7 KB). Then the CPU per entry of encoding
(what a worker adds per delivered item) and decoding (what every consumer adds),
best of --rounds, interleaved.

The farm's items are words drawn from a list of ~130, which compresses better
than real text; the dictionary is trained on 5 farm feeds (not those measured
here) and the fixtures, so the fixture figures are not held out (see
docs/performance.md for figures on feeds the dictionary never saw).

Run: .venv/bin/python bench/bench_memory.py [--items 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.farm import FarmSpec, feed_body  # noqa: E402
from ingest.deliver.publish import Deliverer  # noqa: E402
from ingest.deliver.streamcodec import decode_item, encode_item  # noqa: E402
from ingest.embedded import RedisServer  # noqa: E402
from ingest.keys import Keys  # noqa: E402
from ingest.models import FeedSpec, Fetched  # noqa: E402
from workers.pipeline import process_document  # noqa: E402

FEEDS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "feeds"
BATCH = 1000
FARM_FEEDS = range(100, 140)  # not among the 5 the dictionary was trained on
MIB = 1024 * 1024


async def real_records(client: aioredis.Redis, keys: Keys) -> dict[str, list[bytes]]:
    """Item JSON as the product writes it, from the fixture feeds and from the farm."""
    docs = {"fixtures": [(p.name, p.read_bytes()) for p in sorted(FEEDS.iterdir()) if p.suffix != ".md"],
            "farm": [(f"farm-{n}", feed_body(FarmSpec(), n, 0)) for n in FARM_FEEDS]}
    out: dict[str, list[bytes]] = {}
    for kind, documents in docs.items():
        await client.flushall()
        deliverer = Deliverer(client, keys, 10_000_000, 86400, stream_record="json")
        for name, body in documents:
            url = f"https://bench.example/{name}"
            await process_document(deliverer, FeedSpec(name[:16], url),
                                   Fetched(url, url, 200, {}, body, "2026-01-01T00:00:00.000000Z"))
        out[kind] = [f[b"item"] for _, f in await client.xrange(keys.items_stream)]
    await client.flushall()
    return out


async def used(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def server_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def fill(client: aioredis.Redis, keys: Keys, values: list[bytes], n: int) -> tuple[int, int, float]:
    """used_memory growth, MEMORY USAGE and server CPU seconds of a stream of n entries
    cycling through `values`."""
    await client.flushall()
    base = await used(client)
    cpu = await server_cpu(client)
    deadline = time.monotonic() + 300
    for start in range(0, n, BATCH):
        if time.monotonic() > deadline:
            raise SystemExit("stream fill took over 300 s; aborting")
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH, n)):
                pipe.xadd(keys.items_stream, {"item": values[i % len(values)]}, maxlen=n, approximate=True)
            await pipe.execute()
    cpu = await server_cpu(client) - cpu
    grown = await used(client) - base
    usage = int(await client.memory_usage(keys.items_stream, samples=0) or 0)
    await client.flushall()
    return grown, usage, cpu


def cpu_per_entry(records: list[bytes], rounds: int) -> tuple[float, float]:
    """Best-of-rounds µs of CPU (process time: a busy machine preempts us) per entry to
    encode a record's JSON and to decode the frame."""
    frames = [encode_item(r, "zstd") for r in records]
    best_encode = best_decode = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for r in records:
            encode_item(r, "zstd")
        best_encode = min(best_encode, time.process_time() - started)
        started = time.process_time()
        for f in frames:
            decode_item(f)
        best_decode = min(best_decode, time.process_time() - started)
    return best_encode / len(records) * 1e6, best_decode / len(records) * 1e6


async def bench(url: str, n: int, rounds: int) -> None:
    client = aioredis.Redis.from_url(url)
    keys = Keys("bench")
    kinds = await real_records(client, keys)
    per = 100_000 / n
    for kind, records in kinds.items():
        frames = [encode_item(r, "zstd") for r in records]
        mean_json = sum(map(len, records)) / len(records)
        mean_zstd = sum(map(len, frames)) / len(frames)
        print(f"{kind}: {len(records)} records, mean JSON {mean_json:,.0f} B, zstd frame {mean_zstd:,.0f} B "
              f"({mean_json / mean_zstd:.1f}x)")
        figures: dict[str, list[tuple[int, int, float]]] = {"json": [], "zstd": []}
        for _ in range(2):  # A, B, A, B
            for name, values in (("json", records), ("zstd", frames)):
                figures[name].append(await fill(client, keys, values, n))
        for name, runs in figures.items():
            grown = min(g for g, _, _ in runs)
            usage = min(u for _, u, _ in runs)
            cpu = min(c for _, _, c in runs)
            print(f"  stream_record = {name!r}: {n:,} entries; used_memory +{grown / MIB:,.1f} MiB, "
                  f"MEMORY USAGE {usage / MIB:,.1f} MiB -> per 100k entries {grown * per / MIB:,.1f} MiB "
                  f"({grown / n:,.0f} B an entry); redis-server CPU {cpu / n * 1e6:.1f} µs per XADD")
        encode_us, decode_us = cpu_per_entry(records, rounds)
        print(f"  CPU per entry: encode {encode_us:.1f} µs, decode {decode_us:.1f} µs (best of {rounds})")
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="entries a fill writes (default 100000)")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (best taken)")
    args = parser.parse_args()
    n = max(1000, min(args.items, 2_000_000))
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), Path(tmp) / "redis.sock", appendonly=False)
        server.start()
        try:
            asyncio.run(bench(server.url, n, max(1, args.rounds)))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
