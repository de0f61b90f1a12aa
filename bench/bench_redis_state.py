"""Benchmark: Redis memory per item and commands per document, through the product's code.

Every fixture feed (../shared/fixtures/feeds, or --feeds DIR) is delivered
--copies times as different feeds (a feed id per copy, so every copy is new
and the cluster index sees near-duplicates across feeds, as in production), by
`workers.pipeline.process_document` with the real Deliverer and ClusterIndex,
against a private redis-server (the one on PATH, else the embedded default's;
started here and stopped at the end). Reported per item delivered:

  dedup state    the keys/hashes that remember items (`<ns>:item:*` before #13,
                 `<ns>:seen:*` after), by MEMORY USAGE
  cluster index  item entries (`<ns>:cluster:item:*`, since #21 `<ns>:ce:*`) and
                 LSH bands (`<ns>:cluster:band:*` before #13, `<ns>:cb:*` after,
                 since #21 the hashes `<ns>:cbk:*`)
  stream entry   `<ns>:items` by MEMORY USAGE
  commands       every command the server ran (INFO commandstats, scripts'
                 inner calls included) per document and per item

Written so that it runs unchanged against the code of before #13 too
(PYTHONPATH=<old checkout>): the figures in docs/redis.md compare both.
Run: .venv/bin/python bench/bench_redis_state.py [--copies 20]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import redis.asyncio as aioredis

from ingest.deliver.publish import Deliverer
from ingest.embedded import RedisServer, find_redis_server
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from ingest.settings import Settings
from workers.clusters.index import ClusterIndex
from workers.pipeline import process_document

FEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "feeds"
NS = "bench"


def _kind(key: bytes) -> str:
    name = key.decode("latin-1")
    for prefix, kind in ((f"{NS}:item:", "dedup"), (f"{NS}:seen:", "dedup"),
                         (f"{NS}:cluster:item:", "cluster entries"), (f"{NS}:ce:", "cluster entries"),
                         (f"{NS}:cluster:band:", "cluster bands"), (f"{NS}:cb:", "cluster bands"),
                         (f"{NS}:cbk:", "cluster bands"), (f"{NS}:items", "stream")):
        if name.startswith(prefix):
            return kind
    return "other"


async def bench(url: str, feeds: Path, copies: int) -> None:
    client = aioredis.Redis.from_url(url)
    keys = Keys(NS)
    deliverer = Deliverer(client, keys, 10_000_000, 90 * 86400)
    index = ClusterIndex.from_settings(client, keys, Settings())
    await client.config_resetstat()
    docs = items = 0
    for path in sorted(p for p in feeds.iterdir() if p.suffix in (".xml", ".rss", ".atom", ".json")):
        body = path.read_bytes()
        for copy in range(copies):
            spec = FeedSpec(f"{copy:04d}{path.stem[:12]:0<12}"[:16], f"http://bench.example/{copy}/{path.name}")
            fetched = Fetched(spec.url, spec.url, 200, {}, body, "2026-01-01T00:00:00Z")
            items += len((await process_document(deliverer, spec, fetched, index)).delivered)
            docs += 1
    stats = await client.info("commandstats")
    calls = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_config", "cmdstat_info"))
    by_command = sorted(((int(v["calls"]), k.removeprefix("cmdstat_")) for k, v in stats.items()), reverse=True)
    sizes: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    async for key in client.scan_iter(count=1000):
        kind = _kind(key)
        sizes[kind] += int(await client.memory_usage(key, samples=0) or 0)
        counts[kind] += 1
    print(f"{docs} documents, {items} items delivered (redis {await _version(client)})")
    for kind in ("dedup", "cluster entries", "cluster bands", "stream", "other"):
        print(f"  {kind:16} {counts[kind]:8} keys {sizes[kind] / max(items, 1):8.0f} bytes/item")
    index_bytes = sizes["cluster entries"] + sizes["cluster bands"]
    print(f"  cluster index    {index_bytes / max(items, 1):8.0f} bytes/item")
    print(f"  commands         {calls / max(docs, 1):8.1f} per document, {calls / max(items, 1):.1f} per item")
    print("  top commands     " + ", ".join(f"{name} {n}" for n, name in by_command[:8]))
    await client.aclose()


async def _version(client: aioredis.Redis) -> str:
    return str((await client.info("server"))["redis_version"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="feeds per fixture file (default 20)")
    parser.add_argument("--feeds", type=Path, default=FEEDS, help="directory of feed documents")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = shutil.which("redis-server") or find_redis_server()
        server = RedisServer(Path(tmp), Path(tmp) / "redis.sock", appendonly=False, binary=binary)
        server.start()
        try:
            asyncio.run(bench(server.url, args.feeds, args.copies))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
