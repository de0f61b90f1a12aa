"""Benchmark: polling throughput and daemon memory, on loopback only.

A private redis-server and the test feed farm (in its own process, on
127.0.0.1-3) serve N feeds. The real Poller claims and fetches them in
rounds (every feed due at once), bounded by --rounds:
  round 1       : first fetch of every feed (200, a parse job enqueued each)
  later rounds  : conditional GETs answered 304 (no parse), or, with --plain,
                  unchanged 200 bodies (hash compared, no parse)
Prints polls/s per round and the process's RSS after each round, to show
that memory stays flat. The queue is emptied between rounds (no workers here).

Run: .venv/bin/python bench/bench_poll.py --feeds 2000 --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.embedded import RedisServer  # noqa: E402
from ingest.keys import Keys  # noqa: E402
from ingest.poll.fetch import new_session  # noqa: E402
from ingest.poll.poller import Poller  # noqa: E402
from ingest.poll.registry import add_feed  # noqa: E402
from ingest.poll.scheduler import Scheduler  # noqa: E402
from ingest.redis_conn import connect_arq  # noqa: E402
from ingest.settings import Settings  # noqa: E402

FARM = (
    "import sys, time; sys.path.insert(0, %r)\n"
    "from tests.farm import Farm\n"
    "f = Farm(); f.start(); print(f.port, flush=True)\n"
    "time.sleep(3600)\n"
)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(feeds: int, rounds: int, plain: bool, url: str, port: int) -> None:
    settings = Settings(redis_url=url, namespace="bench", allow_networks="127.0.0.0/8",
                        per_host_concurrency=64, host_min_delay=0.0, poll_batch=500,
                        global_concurrency=200, min_interval=3600, queue_bound=10**9)
    keys = Keys.for_settings(settings)
    client = aioredis.Redis.from_url(url)
    pool = await connect_arq(settings)
    session = new_session(settings)
    hosts = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    kind = "plain" if plain else "feed"
    ids = [
        (await add_feed(client, keys, f"http://{hosts[i % 3]}:{port}/{kind}/b{i}.xml", interval=3600))[0]
        for i in range(feeds)
    ]
    poller = Poller(settings, client, pool, session, Scheduler(client, keys, "bench"))
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    for r in range(rounds):
        await client.delete(keys.stats)
        start = time.perf_counter()
        await client.zadd(keys.schedule, {i: 0 for i in ids})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            stats = await client.hgetall(keys.stats)
            done = sum(int(v) for k, v in stats.items() if k.startswith(b"polls_"))
            if done >= feeds:
                break
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - start
        stats = {k.decode(): int(v) for k, v in (await client.hgetall(keys.stats)).items()
                 if k.startswith(b"polls_")}
        await pool.delete(keys.queue)
        print(f"round {r + 1}: {feeds / elapsed:7.0f} polls/s  rss {rss_mib():6.1f} MiB  {stats}", flush=True)
    stop.set()
    await task
    await session.close()
    await pool.aclose()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--plain", action="store_true", help="no validators: unchanged 200 bodies")
    parser.add_argument("--no-uvloop", action="store_true", help="the stdlib event loop instead of uvloop")
    args = parser.parse_args()
    repo = str(Path(__file__).resolve().parents[1])
    farm = subprocess.Popen([sys.executable, "-c", FARM % repo], stdout=subprocess.PIPE)
    assert farm.stdout is not None
    port = int(farm.stdout.readline())
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), Path(tmp) / "r.sock", appendonly=False)
        server.start()
        try:
            coro = run(args.feeds, args.rounds, args.plain, server.url, port)
            if args.no_uvloop:
                asyncio.run(coro)
            else:
                import uvloop

                uvloop.run(coro)
        finally:
            server.stop()
            farm.kill()


if __name__ == "__main__":
    main()
