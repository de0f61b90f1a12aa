"""Benchmark: the cluster index at scale, Redis memory and CPU per item, old and new code side by side.

Clusters --items distinct synthetic stories (random runs of the words of the
fixture feeds, as long as the fixture items, so each has a sample and 24
bands of its own) through `ClusterIndex.assign`, one call per document of
--per-document items as the pipeline makes them, against a private
redis-server (started here, stopped at the end; the one on PATH unless
--redis-server). Reported per item:

  memory         used_memory growth over the run (the whole index: entries,
                 bands, key overhead) and what the index's keys hold
  redis cpu      used_cpu_user + used_cpu_sys of the server over the run
  client cpu     this process's CPU in `assign` (sketching included)
  commands       every command the server ran (scripts' inner calls included)

With --compare DIR (a checkout of other code, e.g. `git archive <commit> | tar -x -C DIR`)
each round runs the code of DIR then this tree's, each in its own process
and its own server, --rounds times interleaved (A, B, A, B): the machine's
load falls on both alike.

With --buckets N the documents are spread over N successive time buckets of the
index (the clock moved on between them, as a deployment running for N days of
a 48 h retention sees it): from the third on, a reader meets two full older
buckets (the steady state); without it, every item falls in the current
bucket of a new index.

BENCH_INDEX_HASHES=N sets `cluster_index_hashes` (code that has the setting).

Run: .venv/bin/python bench/bench_cluster_index.py [--items 20000] [--compare DIR] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _stories(count: int, seed: int = 21) -> list[tuple[str, str]]:
    """(title, text) of `count` distinct stories made of the fixture feeds' words,
    with the fixture items' text lengths."""
    from tests.corpus import FEEDS_DIR
    from workers.parse import parse_feed_bytes

    words: list[str] = []
    lengths: list[int] = []
    for path in sorted(FEEDS_DIR.iterdir()):
        if path.suffix == ".md":
            continue
        parsed = parse_feed_bytes(path.read_bytes(), {}, "https://bench.example/" + path.name)
        for entry in parsed["entries"]:
            text = str(entry.get("summary") or entry.get("title") or "")
            found = text.split()
            words += found
            if len(found) >= 12:
                lengths.append(len(found))
    rng = random.Random(seed)
    out = []
    for i in range(count):
        n = rng.choice(lengths)
        out.append((f"story {i} " + " ".join(rng.choices(words, k=6)),
                    " ".join(rng.choices(words, k=n))))
    return out


async def _run(url: str, stories: list[tuple[str, str]], per_document: int,
               buckets: int = 0) -> dict[str, float]:
    import dataclasses
    import hashlib

    import redis.asyncio as aioredis

    from ingest.keys import Keys
    from ingest.models import Item
    from ingest.settings import Settings
    from workers.clusters.index import ClusterIndex

    client = aioredis.Redis.from_url(url)
    keys = Keys("bench")
    settings = Settings()
    if os.environ.get("BENCH_INDEX_HASHES"):
        settings = dataclasses.replace(settings, cluster_index_hashes=int(os.environ["BENCH_INDEX_HASHES"]))
    index = ClusterIndex.from_settings(client, keys, settings)
    template = Item(id="0" * 32, version=1, feed_id="bench", feed_url="https://bench.example/feed",
                    feed_title="bench", url=None, link=None, guid=None, title="", authors=[],
                    published_at=None, updated_at=None, fetched_at="2026-01-01T00:00:00Z",
                    summary="", content_html="", content_text="", language=None, categories=[],
                    enclosures=[], content_hash="", cluster_id="")
    items = [dataclasses.replace(template, id=hashlib.blake2b(f"item:{i}".encode(), digest_size=16)
                                 .hexdigest(), title=title, content_text=text)
             for i, (title, text) in enumerate(stories)]
    documents = [items[i : i + per_document] for i in range(0, len(items), per_document)]
    await client.config_resetstat()
    info = await client.info()
    memory0, cpu0 = info["used_memory"], info["used_cpu_user"] + info["used_cpu_sys"]
    width = index.buckets.width
    first = (int(time.time()) // width) * width
    start = time.process_time()
    for number, document in enumerate(documents):
        if buckets:
            await index.assign(document, now=first + (number * buckets // len(documents)) * width)
        else:
            await index.assign(document)
    client_cpu = time.process_time() - start
    info = await client.info()
    memory1, cpu1 = info["used_memory"], info["used_cpu_user"] + info["used_cpu_sys"]
    stats = await client.info("commandstats")
    commands = sum(int(v["calls"]) for k, v in stats.items()
                   if k not in ("cmdstat_config", "cmdstat_info"))
    encodings: dict[str, int] = {}
    async for key in client.scan_iter(match="bench:cbk:*", count=1000):
        encoding = (await client.object("encoding", key)).decode()
        encodings[encoding] = encodings.get(encoding, 0) + 1
    n = len(items)
    result = {
        "items": n,
        "redis_version": (await client.info("server"))["redis_version"],
        "memory_per_item": (memory1 - memory0) / n,
        "keys_per_item": await client.dbsize() / n,
        "redis_cpu_us_per_item": (cpu1 - cpu0) / n * 1e6,
        "client_cpu_us_per_item": client_cpu / n * 1e6,
        "commands_per_item": commands / n,
        "band_hash_encodings": encodings,
    }
    await client.aclose()
    return result


def _child(args: argparse.Namespace) -> None:
    """One run, in this process, of the code on sys.path: prints its result as JSON."""
    from ingest.embedded import RedisServer

    stories = _stories(args.items)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), Path(tmp) / "r.sock", appendonly=False, binary=args.redis_server)
        server.start()
        try:
            print(json.dumps(asyncio.run(_run(server.url, stories, args.per_document,
                                              args.buckets))))
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--per-document", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--buckets", type=int, default=0,
                        help="spread the documents over this many successive time buckets")
    parser.add_argument("--compare", type=Path, help="checkout of the code to compare with")
    parser.add_argument("--redis-server", default=shutil.which("redis-server"),
                        help="redis-server binary (default: the one on PATH)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    trees = ([("before", args.compare.resolve())] if args.compare else []) + [("this tree", REPO)]
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for _ in range(args.rounds):
        for name, tree in trees:
            env = {**os.environ, "PYTHONPATH": str(tree)}
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", "--items", str(args.items),
                 "--per-document", str(args.per_document), "--redis-server", str(args.redis_server),
                 "--buckets", str(args.buckets)],
                cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
            if proc.returncode:
                sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
            results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(name, results[name][-1], flush=True)
    spread = f", over {args.buckets} time buckets" if args.buckets else ""
    print(f"\n{args.items} distinct items, documents of {args.per_document}{spread}, {args.rounds} rounds "
          "interleaved; medians:")
    for name, runs in results.items():
        def median(field: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(float(r[field]) for r in runs)
        print(f"  {name:10} redis {runs[0]['redis_version']}: {median('memory_per_item'):6.0f} B/item, "
              f"{median('keys_per_item'):5.2f} keys/item, redis CPU {median('redis_cpu_us_per_item'):6.1f} µs/item, "
              f"client CPU {median('client_cpu_us_per_item'):6.1f} µs/item, "
              f"{median('commands_per_item'):5.1f} commands/item")


if __name__ == "__main__":
    main()
