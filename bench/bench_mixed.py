"""Worker CPU per changed document: the suite's mixed phase, in one process (#21).

The suite's mixed phase is the farm's next round, where `--changed` (10%) of
the feeds gained `--new-items` (3) new items among their `--items` (30): the
worker reads a document of which most entries it has delivered already. This
bench runs exactly that work without the poller and arq around it, so the CPU
of the document itself is what it measures:

  round 0  every feed's first document (bench/farm.py's bytes), every entry new
  round 1  the changed feeds' next document, through the same worker objects

Each document goes through `workers.pipeline.process_document` as a worker
runs it (the Deliverer, cluster index, normalization options, limits and
article policy a worker builds from the default settings), on a private
redis-server. Reported: CPU µs of this process (the "worker") and of the
redis-server per changed document and per new entry of round 1, and per entry
of round 0, median over `--runs` (each on a flushed Redis), and the Redis memory
of the entries' maps (`<ns>:rawseen:<feed_id>`, workers/rawseen.py) per entry,
and the round trips to Redis per changed document (sends on a connection: a
command, or a pipeline, is one).
No article page is fetched: the farm's items carry their stories. The client
packs commands as a worker's does: with hiredis where the tree has
`ingest.redis_conn.pack_with_hiredis`, in Python before. Not in these
figures: arq's own cost per job (decoding, claiming, the result), the same in
both trees.

Compare two trees under the same load with `--tree NAME=DIR` (twice or more):
each run is a child process with `PYTHONPATH=DIR`, the trees taking turns.

    .venv/bin/python bench/bench_mixed.py --feeds 400 --items 30 --runs 5
    .venv/bin/python bench/bench_mixed.py --tree base=/tmp/base --tree new=. --runs 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not os.environ.get("PYTHONPATH"):  # a child of --tree imports the tree it was given
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.farm import FarmSpec, changed_in_round, feed_body  # noqa: E402

MAX_FEEDS = 5000
MAX_ITEMS = 200
MAX_RUNS = 20


def _redis_cpu(info: dict[str, Any]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _one_run(spec: FarmSpec, url: str) -> dict[str, float]:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection

    from ingest.deliver.publish import Deliverer
    from ingest.keys import Keys
    from ingest.models import FeedSpec, Fetched
    from ingest.poll.fetch import new_session
    from ingest.settings import Settings
    from workers.article.fetch import ArticleFetcher
    from workers.clusters.index import ClusterIndex
    from workers.limits import Limits
    from workers.normalize.record import NormalizeOptions
    from workers.pipeline import process_document

    settings = Settings(allow_networks="127.0.0.0/8")
    client = aioredis.Redis.from_url(url)
    try:  # the worker's pool (arq's) packs commands with hiredis since #21 (ingest/wakeup.py)
        from ingest.redis_conn import pack_with_hiredis
    except ImportError:  # a tree of before: arq's pool packed them in Python, as this client does
        pass
    else:
        await pack_with_hiredis(client)
    await client.flushall()
    keys = Keys("bench")
    deliverer = Deliverer(client, keys, settings.stream_xadd_cap, settings.item_retention_seconds,
                          settings.max_versions, settings.stream_record)
    clusters = ClusterIndex.from_settings(client, keys, settings)
    options = NormalizeOptions.from_settings(settings)
    limits = Limits.from_settings(settings)
    session = new_session(settings)
    articles = ArticleFetcher(session, client, keys, settings)
    base = "http://127.0.0.1:1"
    specs = [FeedSpec(f"farm{n}", f"{base}/feed/{n}.xml") for n in range(spec.feeds)]

    async def run(round_: int, feeds: list[int]) -> tuple[float, float, int, int]:
        docs = [(n, feed_body(spec, n, round_, base)) for n in feeds]
        before = _redis_cpu(await client.info("cpu"))
        sent[0] = 0
        cpu = time.process_time()
        entries = new = 0
        for n, body in docs:
            fetched = Fetched(specs[n].url, specs[n].url, 200, {"content-type": "application/xml"}, body,
                              "2026-01-05T06:00:00Z")
            result = (await process_document(deliverer, specs[n], fetched, clusters, options, limits,
                                             articles)).result
            entries += result.entries
            new += result.new + result.updated
        worker = time.process_time() - cpu
        sends[round_] = sent[0]
        return worker, _redis_cpu(await client.info("cpu")) - before, entries, new

    # Round trips: every command or pipeline is one send on a connection (redis-py's own).
    sent, sends = [0], [0, 0]
    send = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        sent[0] += 1
        await send(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        cold_cpu, cold_redis, cold_entries, _ = await run(0, list(range(spec.feeds)))
        changed = [n for n in range(spec.feeds) if changed_in_round(spec, n, 1)]
        mixed_cpu, mixed_redis, _, mixed_new = await run(1, changed)
        # Memory of the entries' maps (#21; none in a tree without them), sampled over 50 feeds.
        sample = [f"{keys.ns}:rawseen:{specs[n].feed_id}" for n in range(min(50, spec.feeds))]
        sizes = [await client.memory_usage(key) or 0 for key in sample]
    finally:
        await session.close()
        await client.aclose()
    docs = max(len(changed), 1)
    return {
        "cold_entries": cold_entries, "cold_worker_us_per_entry": 1e6 * cold_cpu / max(cold_entries, 1),
        "cold_redis_us_per_entry": 1e6 * cold_redis / max(cold_entries, 1),
        "changed_docs": len(changed), "new_entries": mixed_new,
        "worker_us_per_changed_doc": 1e6 * mixed_cpu / docs,
        "worker_us_per_new_entry": 1e6 * mixed_cpu / max(mixed_new, 1),
        "redis_us_per_changed_doc": 1e6 * mixed_redis / docs,
        "round_trips_per_changed_doc": sends[1] / docs,
        "map_bytes_per_entry": sum(sizes) / (len(sample) * spec.items),
    }


def child(args: argparse.Namespace) -> dict[str, float]:
    """One run on a private redis-server; the figures as a dict."""
    from ingest.embedded import RedisServer

    spec = FarmSpec(feeds=args.feeds, items=args.items, changed=args.changed, new_items=args.new_items)
    with tempfile.TemporaryDirectory(prefix="bench-mixed-") as tmp:
        server = RedisServer(Path(tmp) / "redis", Path(tmp) / "redis.sock", appendonly=False)
        server.start()
        try:
            return asyncio.run(_one_run(spec, server.url))
        finally:
            server.stop()


def _print(name: str, runs: list[dict[str, float]]) -> None:
    def med(key: str) -> str:
        values = [r[key] for r in runs]
        return f"{statistics.median(values):8.0f} ({min(values):.0f}-{max(values):.0f})"

    first = runs[0]
    print(f"{name}: {len(runs)} runs; round 1: {first['changed_docs']:.0f} changed documents, "
          f"{first['new_entries']:.0f} new entries; round 0: {first['cold_entries']:.0f} entries")
    print(f"  worker µs per changed document  {med('worker_us_per_changed_doc')}")
    print(f"  worker µs per new entry         {med('worker_us_per_new_entry')}")
    print(f"  redis µs per changed document   {med('redis_us_per_changed_doc')}")
    print(f"  round trips per changed doc     {med('round_trips_per_changed_doc')}")
    print(f"  round 0 worker µs per entry     {med('cold_worker_us_per_entry')}")
    print(f"  round 0 redis µs per entry      {med('cold_redis_us_per_entry')}")
    print(f"  entries' map, bytes per entry   {med('map_bytes_per_entry')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--feeds", type=int, default=400)
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--changed", type=float, default=0.1, help="fraction of feeds with new items in round 1")
    p.add_argument("--new-items", type=int, default=3)
    p.add_argument("--runs", type=int, default=3, help="runs per tree (each on a flushed Redis)")
    p.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                   help="run the code of DIR (PYTHONPATH) as NAME; twice or more: the trees take turns")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds at most per run")
    p.add_argument("--json", help="write every run's figures here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if not (0 < args.feeds <= MAX_FEEDS and 0 < args.items <= MAX_ITEMS and 0 < args.runs <= MAX_RUNS):
        p.error(f"bounds: --feeds 1..{MAX_FEEDS}, --items 1..{MAX_ITEMS}, --runs 1..{MAX_RUNS}")
    if args.child:
        print(json.dumps(child(args)))
        return
    trees = [t.split("=", 1) for t in args.tree] or [["this tree", str(Path(__file__).resolve().parents[1])]]
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    flags = ["--feeds", str(args.feeds), "--items", str(args.items), "--changed", str(args.changed),
             "--new-items", str(args.new_items), "--runs", "1", "--child"]
    for _ in range(args.runs):
        for name, tree in trees:
            env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()), INGEST_LOG_LEVEL="WARNING")
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), *flags], env=env,
                                 capture_output=True, text=True, timeout=args.timeout, check=False)
            if out.returncode:
                sys.exit(f"{name}: run failed:\n{out.stderr[-3000:]}")
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{name}: {results[name][-1]['worker_us_per_changed_doc']:.0f} µs per changed document",
                  file=sys.stderr)
    for name, runs in results.items():
        _print(name, runs)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
