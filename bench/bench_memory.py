"""Benchmark: Redis memory per 100k items for the stream and for the dedup state.

Measures, against a private redis-server on loopback (the binary the embedded
default ships; started here, stopped at the end; bounded by --items):

  1. the item stream `<ns>:items`: real item records (the shared fixture feeds,
     parsed, normalized and delivered by the product's own code) XADDed
     --items times, as the Lua script does; what `stream_maxlen` costs;
  2. the dedup/update state `<ns>:item:<id>`: one key with a TTL per item
     ("version|content_hash|fingerprint"), --items of them; what
     `item_retention_days` keeps alive.

Reported: INFO memory used_memory growth and MEMORY USAGE of the stream, per
100k items. Run: .venv/bin/python bench/bench_memory.py [--items 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from ingest.deliver.publish import Deliverer
from ingest.embedded import RedisServer
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from workers.pipeline import process_document

FEEDS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "feeds"
BATCH = 1000


async def real_records(client: aioredis.Redis, keys: Keys) -> tuple[list[bytes], list[bytes]]:
    """Item JSON and state values as the product writes them, from the fixture feeds."""
    deliverer = Deliverer(client, keys, 1_000_000, 86400)
    for path in sorted(FEEDS.iterdir()):
        if path.suffix == ".md":
            continue
        url = f"https://bench.example/{path.name}"
        spec = FeedSpec(path.name[:16], url)
        await process_document(deliverer, spec, Fetched(url, url, 200, {}, path.read_bytes(),
                                                         "2026-01-01T00:00:00.000000Z"))
    items = [f[b"item"] for _, f in await client.xrange(keys.items_stream)]
    states = [await client.get(k) for k in await client.keys(keys.item_state("*"))]
    return items, [s for s in states if s]


async def used(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def bench(url: str, n: int) -> None:
    client = aioredis.Redis.from_url(url)
    keys = Keys("bench")
    items, states = await real_records(client, keys)
    await client.flushall()
    avg_json = sum(map(len, items)) / len(items)
    avg_state = sum(map(len, states)) / len(states)

    base = await used(client)
    deadline = time.monotonic() + 300
    for start in range(0, n, BATCH):
        if time.monotonic() > deadline:
            raise SystemExit("stream fill took over 300 s; aborting")
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH, n)):
                pipe.xadd(keys.items_stream, {"item": items[i % len(items)]},
                          maxlen=n, approximate=True)
            await pipe.execute()
    stream_used = await used(client) - base
    stream_usage = int(await client.memory_usage(keys.items_stream, samples=0) or 0)
    length = await client.xlen(keys.items_stream)
    await client.flushall()

    base = await used(client)
    for start in range(0, n, BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH, n)):
                item_id = f"{i:032x}"  # ids are 128-bit hex, like the product's
                pipe.set(keys.item_state(item_id), states[i % len(states)], ex=90 * 86400)
            await pipe.execute()
    state_used = await used(client) - base
    await client.aclose()

    per = 100_000 / n
    mib = 1024 * 1024
    print(f"records: {len(items)} real items from {FEEDS}; mean item JSON {avg_json:,.0f} bytes, "
          f"mean state value {avg_state:.0f} bytes")
    print(f"stream {keys.items_stream}: {length:,} entries; used_memory +{stream_used / mib:,.1f} MiB, "
          f"MEMORY USAGE {stream_usage / mib:,.1f} MiB -> per 100k items: "
          f"{stream_used * per / mib:,.1f} MiB ({stream_used / n:,.0f} bytes/item)")
    print(f"state {keys.item_state('<id>')}: {n:,} keys with TTL; used_memory +{state_used / mib:,.1f} MiB "
          f"-> per 100k items: {state_used * per / mib:,.1f} MiB ({state_used / n:,.0f} bytes/item)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items to write (default 100000)")
    args = parser.parse_args()
    n = max(1000, min(args.items, 2_000_000))
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), Path(tmp) / "redis.sock", appendonly=False)
        server.start()
        try:
            asyncio.run(bench(server.url, n))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
