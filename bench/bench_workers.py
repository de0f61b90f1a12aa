"""Benchmark: cold ingest through `ingest run` with N worker processes, on loopback only.

A private redis-server and a feed farm (its own process, tests/farm.py on
127.0.0.1-3) serve --feeds feeds of --items news items (~2.5 KB each,
gzip). The feeds are registered, then `ingest run` (SQLite sink, per-host
limits opened) runs until every entry is stored. Prints entries/s from the
daemon's start to the last stored entry, and the CPU seconds of the daemon
and its worker processes per stored entry. Figures are printed, never asserted.

Run: .venv/bin/python bench/bench_workers.py --feeds 300 --workers 2
     (--workers omitted: `ingest run` without the flag; --code DIR runs the
     `ingest` package found in DIR instead, e.g. an export of main, for a before/after)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.embedded import RedisServer  # noqa: E402
from ingest.keys import Keys  # noqa: E402
from ingest.poll.registry import add_feed  # noqa: E402

FARM = """
import sys, time, random; sys.path.insert(0, %r)
from tests.farm import Farm
WORDS = ("government minister said talks would continue next week amid concern over trade "
         "security officials region market prices rose sharply after report city council "
         "approved plan school students teachers weather storm coast residents").split()
rng = random.Random(7)
def feed(n, items):
    out = []
    for i in range(items):
        text = " ".join(rng.choice(WORDS) for _ in range(330))
        out.append(f"<item><guid>f{n}-{i}</guid><title>Story {i} of feed {n}</title>"
                   f"<link>http://news.example/{n}/{i}?utm_source=rss</link>"
                   f"<pubDate>Mon, 06 Jan 2025 {i %% 24:02d}:00:00 GMT</pubDate>"
                   f"<description>&lt;p&gt;{text}&lt;/p&gt;</description></item>")
    head = f'<rss version="2.0"><channel><title>Feed {n}</title><language>en</language>'
    return (head + "".join(out) + "</channel></rss>").encode()
f = Farm()
for n in range(%d):
    f.feeds[f"b{n}"] = feed(n, %d)
f.start(); print(f.port, flush=True)
time.sleep(3600)
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


async def register(url: str, port: int, feeds: int) -> None:
    client = aioredis.Redis.from_url(url)
    hosts = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    for n in range(feeds):
        await add_feed(client, Keys("bench"), f"http://{hosts[n % 3]}:{port}/gzip/b{n}",
                       interval=3600)
    await client.aclose()


def progress(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return (f"queue {client.zcard('bench:queue')}, stream {client.xlen('bench:items')}, "
                f"polls {client.hget('bench:stats', 'polls_changed')}")
    finally:
        client.close()


def redis_calls(url: str) -> int:
    """Commands the server has run so far (INFO commandstats), a load-independent cost."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = cast(dict[str, dict[str, Any]], client.info("commandstats"))
        return sum(int(v["calls"]) for v in stats.values())
    finally:
        client.close()


def print_commandstats(url: str, entries: int) -> None:
    """Which commands the run cost, per entry: calls and the server's microseconds
    (scripts' inner calls are counted under their own names as well as under EVALSHA)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = cast(dict[str, dict[str, Any]], client.info("commandstats"))
    finally:
        client.close()
    print(f"{'command':<28} {'calls/entry':>12} {'us/entry':>10}")
    for name, v in sorted(stats.items(), key=lambda kv: -float(kv[1]["usec"]))[:20]:
        print(f"{name:<28} {int(v['calls']) / entries:12.2f} {float(v['usec']) / entries:10.2f}")


def redis_memory_mib(url: str) -> float:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(cast(dict[str, Any], client.info("memory"))["used_memory"]) / 2**20
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--workers", default=None, help="`ingest run --workers N` (omit: no flag)")
    parser.add_argument("--code", default=str(REPO), help="directory holding the ingest package to run")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--progress", action="store_true", help="print stream/stored counts every 5 s")
    parser.add_argument("--commandstats", action="store_true",
                        help="print the Redis commands of the run by calls and server time, per entry")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the daemon, e.g. --set worker_max_jobs=4")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    server = RedisServer(directory=tmp / "redis", socket_path=tmp / "redis.sock", port=0)
    server.start()
    farm = subprocess.Popen([sys.executable, "-c", FARM % (str(REPO), args.feeds, args.items)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert farm.stdout is not None
        port = int(farm.stdout.readline())
        asyncio.run(register(server.url, port, args.feeds))
        db = tmp / "items.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
        env.update(INGEST_REDIS_URL=server.url, INGEST_NAMESPACE="bench", INGEST_DATA_DIR=str(tmp),
                   INGEST_STORAGE_URL=f"sqlite:///{db}", INGEST_ALLOW_NETWORKS="127.0.0.0/8",
                   INGEST_HOST_MIN_DELAY="0", INGEST_PER_HOST_CONCURRENCY="64",
                   INGEST_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"), PYTHONPATH=args.code)
        for assignment in args.set:
            key, _, value = assignment.partition("=")
            env["INGEST_" + key.upper()] = value
        cmd = [sys.executable, "-m", "ingest", "run"]
        if args.workers is not None:
            cmd += ["--workers", args.workers]
        total = args.feeds * args.items
        calls_before = redis_calls(server.url)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=args.code, start_new_session=True)
        done_at, cpu, calls, memory = None, 0.0, 0, 0.0
        last_report = started
        while time.monotonic() - started < args.timeout:
            time.sleep(0.2)
            if args.progress and time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                print(f"{last_report - started:6.1f} s: {progress(server.url)}, stored {stored(db)}",
                      flush=True)
            cpu = max(cpu, cpu_seconds(proc.pid))
            if stored(db) >= total:
                done_at = time.monotonic()
                cpu = max(cpu, cpu_seconds(proc.pid))
                calls = redis_calls(server.url) - calls_before
                memory = redis_memory_mib(server.url)
                break
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        if done_at is None:
            print(f"timed out: {stored(db)} of {total} stored")
            return
        took = done_at - started
        print(f"cold ingest, {args.feeds} feeds x {args.items} items, workers={args.workers or 'default'}"
              f" {' '.join(args.set)}, code {args.code}: {total} entries stored in {took:.1f} s"
              f" = {total / took:.0f} entries/s; CPU {cpu:.1f} s = {cpu / total * 1000:.2f} ms per entry"
              f" (daemon + workers); {calls / args.feeds:.0f} Redis commands per feed;"
              f" Redis memory {memory:.0f} MiB")
        if args.commandstats:
            print_commandstats(server.url, total)
    finally:
        farm.kill()
        server.stop()


if __name__ == "__main__":
    main()
