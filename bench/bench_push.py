"""Benchmark: WebSub publish at a hub -> item on the stream, through a real `ingest run`.

A test hub (tests/websubhub.py) on loopback serves one feed that announces
it; `ingest run` (bench/service.py: private redis-server, HTTP server with
`public_url`, poller, workers, renewal loop) polls the feed, finds the hub,
subscribes and is verified, all by itself. Then:

  latency     --pushes sequential pushes of one new entry each: from the
              hub's POST to the entry on <ns>:items (XREAD BLOCK), p50/p99
  throughput  --batch pushes of --per-push entries each, --concurrency at
              a time: pushed items per second until all are on the stream

Every wait is bounded. Run:
  .venv/bin/python bench/bench_push.py --pushes 1000 --batch 500 --per-push 10 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service import Service  # noqa: E402
from tests.websubhub import WebSubHub  # noqa: E402


def atom(hub: str, topic: str, entries: range) -> bytes:
    body = "".join(
        f"<entry><id>urn:bench:{n}</id><title>Story {n}</title><link href='https://pub.example/{n}'/>"
        f"<updated>2026-11-30T10:00:00Z</updated><content type='html'>&lt;p&gt;Story number {n}, pushed "
        f"by the hub.&lt;/p&gt;</content></entry>" for n in entries)
    return (f"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>Bench</title>"
            f"<id>urn:bench</id><updated>2026-11-30T10:00:00Z</updated><link rel='hub' href='{hub}'/>"
            f"<link rel='self' href='{topic}'/>{body}</feed>").encode()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def wait_subscribed(hub: WebSubHub, topic: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not hub.live(topic):
        if time.monotonic() > deadline:
            raise SystemExit(f"not subscribed within {timeout:.0f} s (verifications: {hub.verifications}, "
                             f"requests: {hub.requests})")
        await asyncio.sleep(0.1)


async def run(args: argparse.Namespace, svc: Service) -> None:
    hub = WebSubHub()
    await hub.start()
    topic = hub.feed_url("bench")
    hub.documents["bench"] = atom(hub.url, topic, range(0, 1))
    redis = aioredis.Redis.from_url(svc.redis_server.url)
    try:
        await asyncio.to_thread(svc.ingest, "add", topic)
        await asyncio.to_thread(svc.start)
        try:
            await wait_subscribed(hub, topic, 120)  # the poll finds the hub; the renewal loop subscribes
        except SystemExit:
            print(svc.log_path.read_text()[-3000:], file=sys.stderr)
            for feed_id in await redis.smembers(svc.keys.feeds):
                print(await redis.hgetall(svc.keys.feed(feed_id.decode())), file=sys.stderr)
            raise
        stream = svc.keys.items_stream
        for _ in range(600):  # the polled entry first (bounded: 60 s)
            if await redis.xlen(stream) >= 1:
                break
            await asyncio.sleep(0.1)
        last = (await redis.xrevrange(stream, count=1))[0][0]

        latencies: list[float] = []
        for n in range(1, args.pushes + 1):
            body = atom(hub.url, topic, range(n, n + 1))
            started = time.perf_counter()
            assert await hub.publish(topic, body) == [202]
            reply = await redis.xread({stream: last}, count=1, block=10_000)
            if not reply:
                raise SystemExit(f"push {n}: nothing on the stream after 10 s")
            latencies.append(time.perf_counter() - started)
            last = reply[0][1][-1][0]
        print(f"latency   {len(latencies)} pushes, 1 new item each: p50 {percentile(latencies, 50) * 1000:.1f} ms"
              f"  p99 {percentile(latencies, 99) * 1000:.1f} ms  mean {statistics.mean(latencies) * 1000:.1f} ms"
              f"  max {max(latencies) * 1000:.1f} ms")

        base = args.pushes + 1
        before = await redis.xlen(stream)
        want = args.batch * args.per_push
        bodies = [atom(hub.url, topic, range(base + i * args.per_push, base + (i + 1) * args.per_push))
                  for i in range(args.batch)]
        gate = asyncio.Semaphore(args.concurrency)

        async def one(body: bytes) -> None:
            async with gate:
                assert await hub.publish(topic, body) == [202]

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        accepted = time.perf_counter() - started
        deadline = time.monotonic() + 300
        while await redis.xlen(stream) - before < want:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {await redis.xlen(stream) - before} of {want} items after 300 s")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        print(f"throughput {args.batch} pushes x {args.per_push} items, concurrency {args.concurrency}: "
              f"hub done in {accepted:.2f} s ({args.batch / accepted:.0f} pushes/s accepted), all {want} items "
              f"on the stream in {elapsed:.2f} s = {want / elapsed:.0f} items/s")
        stats = {k.decode(): v.decode() for k, v in (await redis.hgetall(svc.keys.stats)).items()
                 if re.match(rb"push_", k)}
        print("counters", {k: stats[k] for k in sorted(stats) if "bucket" not in k})
    finally:
        await asyncio.to_thread(svc.stop)
        await redis.aclose()
        await hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--per-push", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(Path(tmp), args.workers, log_level="WARNING")
        listen = re.search(r'listen = "([^"]+)"', svc.config.read_text())
        assert listen is not None
        with svc.config.open("a") as fh:
            fh.write(f'public_url = "http://{listen.group(1)}"\npush_poll_interval = 86400\n')
        svc.start_redis()
        try:
            asyncio.run(run(args, svc))
        finally:
            svc.redis_server.stop()


if __name__ == "__main__":
    main()
