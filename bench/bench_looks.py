"""What the workers' looks at the queue cost per job, two or more trees interleaved.

Every announced job wakes every idle worker, and each looks at the queue; one
claims the job, the others find it taken (ingest/wakeup.py). So a look is paid
once per worker per job, whatever the job does. Here --workers PromptWorker
processes of each tree (`PYTHONPATH=DIR`, arq's options as a worker has them,
workers/settings.py) run jobs that do nothing, queued one at a time with
`enqueue_announced` and --gap-ms between them, as paced feeds come due; the
trees take turns (A B, B A, ...) on a private redis-server each, so load from
elsewhere falls on both alike.

Reported per tree, median over rounds (min-max): the CPU of the worker
processes per job, of the redis-server per job, and the Redis commands per job
(INFO commandstats; a script's own calls counted too).

    .venv/bin/python bench/bench_looks.py --tree base=/tmp/base --tree new=. --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "bench:looks"

__all__ = ["main"]


async def nothing(ctx: dict[str, Any]) -> None:
    """The job: no work, so what is measured is the queue's."""


def _child(url: str) -> None:
    """One worker process of the tree on PYTHONPATH (sys.path[0] is bench/, not a tree)."""
    from arq.worker import func

    from ingest.settings import Settings
    from ingest.wakeup import PromptWorker
    from workers.settings import worker_options

    # A worker's Redis, room, poll delay and read limit; not its hooks, which build a whole
    # worker's context (HTTP session, store) around jobs that here do nothing.
    options = worker_options(Settings(redis_url=url))
    worker = PromptWorker(
        functions=[func(nothing, name="nothing", keep_result=0)], queue_name=QUEUE, handle_signals=True,
        **{k: options[k] for k in ("redis_settings", "max_jobs", "poll_delay", "queue_read_limit")})
    worker.run()


async def _one(tree: Path, jobs: int, workers: int, gap: float) -> dict[str, float]:
    import redis.asyncio as aioredis
    from arq.connections import create_pool

    from bench.procstat import cpu_seconds
    from ingest.embedded import RedisServer
    from ingest.redis_conn import arq_redis_settings
    from ingest.settings import Settings
    from ingest.wakeup import enqueue_announced, wake_channel

    with tempfile.TemporaryDirectory(prefix="bench-looks-") as tmp:
        server = RedisServer(Path(tmp) / "redis", Path(tmp) / "redis.sock", appendonly=True)
        server.start()
        env = {**os.environ, "PYTHONPATH": str(tree)}
        children = [subprocess.Popen([sys.executable, __file__, "--child", server.url], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for _ in range(workers)]
        client = aioredis.Redis.from_url(server.url)
        pool = await create_pool(arq_redis_settings(Settings(redis_url=server.url)), default_queue_name=QUEUE)
        try:
            deadline = time.monotonic() + 30
            channel = wake_channel(QUEUE)
            while await client.pubsub_numsub(channel) != [(channel.encode(), workers)]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not subscribe within 30 s")
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # past their first looks
            await client.config_resetstat()
            pids = [c.pid for c in children]
            before_workers = cpu_seconds(pids)
            info = await client.info("cpu")
            before_redis = info["used_cpu_user"] + info["used_cpu_sys"]
            for _ in range(jobs):
                await enqueue_announced(pool, "nothing")
                await asyncio.sleep(gap)
            deadline = time.monotonic() + 60
            while await client.zcard(QUEUE) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            info = await client.info("cpu")
            stats = await client.info("commandstats")
            calls = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config"))
            enqueue = 5  # the enqueue's MULTI, PSETEX, ZADD, PUBLISH, EXEC: the same in every tree
            return {
                "workers_us": 1e6 * (cpu_seconds(pids) - before_workers) / jobs,
                "redis_us": 1e6 * (info["used_cpu_user"] + info["used_cpu_sys"] - before_redis) / jobs,
                "commands": calls / jobs - enqueue,
            }
        finally:
            for c in children:
                c.terminate()
            for c in children:
                c.wait(10)
            await pool.aclose()
            await client.aclose()
            server.stop()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
        return
    sys.path.insert(0, str(ROOT))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--tree", action="append", required=True, help="NAME=DIR (repeat; DIR holds ingest/)")
    p.add_argument("--jobs", type=int, default=400, help="jobs per round and tree")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--gap-ms", type=float, default=5.0, help="between two jobs queued")
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    if not (1 <= args.jobs <= 5000 and 1 <= args.workers <= 8 and 1 <= args.rounds <= 20):
        p.error("bounds: --jobs 1..5000, --workers 1..8, --rounds 1..20")
    trees = [(name, Path(d).resolve()) for name, _, d in (t.partition("=") for t in args.tree)]
    figures: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for r in range(args.rounds):
        order = trees if r % 2 == 0 else trees[::-1]
        for name, tree in order:
            result = asyncio.run(_one(tree, args.jobs, args.workers, args.gap_ms / 1000))
            figures[name].append(result)
            print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()), flush=True)
    print(f"{args.jobs} jobs a round, one at a time ({args.gap_ms} ms apart), {args.workers} workers; "
          f"medians over {args.rounds} rounds (min-max):")
    for name, _ in trees:
        cells = []
        for key, label in (("workers_us", "workers µs/job"), ("redis_us", "redis µs/job"),
                           ("commands", "commands/job")):
            values = [f[key] for f in figures[name]]
            cells.append(f"{label} {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"  {name:6s} " + ", ".join(cells))


if __name__ == "__main__":
    main()
