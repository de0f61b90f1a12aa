"""Benchmark: what metrics cost where events happen, and what a scrape costs.

Against a private redis-server on a Unix socket:
  record_fetch       one poll's counters (outcome, bucket, sum, count, bytes): one pipelined round trip
  record_processing  one document's counters (parse/normalize time, latency per item, minute key)
  /metrics render    read_snapshot + feeds_by_state + render, with --feeds registered feeds
Prints client CPU and wall time per call.

Run: .venv/bin/python bench/bench_web.py --calls 5000 --feeds 1000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.counters import record_fetch, record_processing  # noqa: E402
from ingest.embedded import RedisServer  # noqa: E402
from ingest.keys import Keys  # noqa: E402
from ingest.models import Fetched, Item  # noqa: E402
from ingest.poll.registry import add_feed  # noqa: E402
from ingest.stats import feeds_by_state, read_snapshot  # noqa: E402
from ingest.web.metrics import render_metrics  # noqa: E402


async def _timed(label: str, calls: int, fn: Callable[[], Awaitable[object]]) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await fn()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{label:28} {calls:6} calls  {cpu / calls * 1e6:8.1f} µs CPU  {wall / calls * 1e6:8.1f} µs wall")


def _item(n: int) -> Item:
    return Item(id=f"i{n}", version=1, feed_id="f", feed_url="u", feed_title="t", url=None, link=None, guid=None,
                title="x", authors=[], published_at=None, updated_at=None, fetched_at="2026-01-01T00:00:00Z",
                summary="", content_html="", content_text="", language=None, categories=[], enclosures=[],
                content_hash="h", cluster_id="c")


async def main(calls: int, feeds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(directory=Path(tmp), socket_path=Path(tmp) / "r.sock", port=0)
        server.start()
        try:
            redis = aioredis.Redis.from_url(server.url)
            keys = Keys("bench")
            fetched = Fetched(url="u", final_url="u", status=200, headers={}, body=b"x" * 20000,
                              fetched_at="2026-01-01T00:00:00Z")
            await _timed("record_fetch", calls, lambda: record_fetch(redis, keys, fetched, 0.12, True))
            items = [dataclasses.replace(_item(n)) for n in range(5)]
            await _timed("record_processing (5 items)", calls,
                         lambda: record_processing(redis, keys, 0.004, 0.003, items))
            for n in range(feeds):
                await add_feed(redis, keys, f"http://feeds.example/{n}.xml")

            async def scrape() -> bytes:
                return render_metrics(await read_snapshot(redis, keys), await feeds_by_state(redis, keys),
                                      await redis.info())

            await _timed(f"/metrics ({feeds} feeds)", 20, scrape)
            await redis.aclose()
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--feeds", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.feeds))
