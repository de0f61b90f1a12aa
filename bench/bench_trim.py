"""Benchmark (#20): what keeping the stream for durable groups costs per delivered entry.

Against a private redis-server on loopback (the binary the embedded default ships),
a stream at its steady length (`--window` entries) with one durable group
(`storage`) reading and acknowledging everything, entries are delivered by the
product's delivery script in documents of 30 items, two ways, interleaved
(A, B, A, B, ...):

  A  before #20: the script's `XADD MAXLEN ~ <window>` trims on every append;
  B  after #20: the script's `XADD MAXLEN ~` carries only the hard cap, and the
     stream trimmer ticks every `--tick` seconds meanwhile (XINFO GROUPS, XPENDING,
     XINFO CONSUMERS, MEMORY USAGE, the cut script, the backpressure decision).

Reported per delivered entry: wall time of delivery, client CPU (this process:
delivery, the consumer and, in B, the trimmer) and Redis server CPU (INFO cpu);
and per tick: the trimmer's wall time. Run:

    .venv/bin/python bench/bench_trim.py [--entries 30000] [--window 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import statistics
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from ingest.deliver.publish import Deliverer
from ingest.deliver.trim import Trimmer, durable_group_names
from ingest.embedded import RedisServer
from ingest.keys import Keys
from ingest.models import Item
from ingest.settings import Settings

PER_DOC = 30


def _item(i: int, text: str) -> Item:
    return Item(id=f"item{i:08d}", version=1, feed_id=f"feed{i // PER_DOC:06d}", feed_url="http://b.example/f",
                feed_title="Bench", url=f"http://b.example/{i}", link=f"http://b.example/{i}", guid=str(i),
                title=f"Story {i}", authors=["Desk"], published_at="2026-01-01T00:00:00Z", updated_at=None,
                fetched_at="2026-01-01T00:00:00.000000Z", summary=text[:300], content_html=f"<p>{text}</p>",
                content_text=text, language="en", categories=["News"], enclosures=[],
                content_hash=f"h{i}", cluster_id=f"item{i:08d}")


async def _consume(client: aioredis.Redis, keys: Keys, stop: asyncio.Event) -> None:
    """The durable group keeping up: read and acknowledge everything."""
    while not stop.is_set():
        reply = await client.xreadgroup("storage", "c", {keys.items_stream: ">"}, count=500, block=50)
        for _, entries in reply or []:
            if entries:
                await client.xack(keys.items_stream, "storage", *[eid for eid, _ in entries])


async def _server_cpu(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def one_round(client: aioredis.Redis, settings: Settings, way: str, start: int, n: int,
                    tick: float) -> dict[str, float]:
    keys = Keys(settings.namespace)
    text = "word " * 500  # ~2.5 KB of text, ~3 KB records like the farm's
    cap = settings.stream_maxlen if way == "A" else settings.stream_xadd_cap
    deliverer = Deliverer(client, keys, cap, 86400)
    stop = asyncio.Event()
    consumer = asyncio.create_task(_consume(client, keys, stop))
    ticks: list[float] = []
    trimmer = Trimmer(client, keys, settings, durable_group_names(settings, keys, ()), "bench")

    async def trim_loop() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await client.delete(keys.trim_lock)
            await trimmer.tick()
            ticks.append(time.perf_counter() - t)
            try:
                await asyncio.wait_for(stop.wait(), tick)
            except TimeoutError:
                pass

    trim_task = asyncio.create_task(trim_loop()) if way == "B" else None
    cpu0, server0, wall0 = time.process_time(), await _server_cpu(client), time.perf_counter()
    for first in range(start, start + n, PER_DOC):
        items = [_item(i, text) for i in range(first, first + PER_DOC)]
        await deliverer.deliver(items[0].feed_id, [(i, i.content_hash) for i in items],
                                await deliverer.states(items[0].feed_id, [i.id for i in items]))
    wall = time.perf_counter() - wall0
    stop.set()
    await consumer
    if trim_task:
        await trim_task
    cpu, server = time.process_time() - cpu0, await _server_cpu(client) - server0
    return {"wall_us": wall / n * 1e6, "client_cpu_us": cpu / n * 1e6, "server_cpu_us": server / n * 1e6,
            "tick_ms": statistics.median(ticks) * 1000 if ticks else 0.0, "ticks": len(ticks),
            "length": float(await client.xlen(keys.items_stream))}


async def bench(url: str, entries: int, window: int, rounds: int, tick: float) -> None:
    client = aioredis.Redis.from_url(url)
    settings = dataclasses.replace(Settings(namespace="bench", redis_url=url), stream_maxlen=window,
                                   stream_max_bytes=0)
    keys = Keys("bench")
    await client.xgroup_create(keys.items_stream, "storage", id="$", mkstream=True)
    warm = await one_round(client, settings, "A", 0, window, tick)  # the stream at its steady length
    print(f"stream filled to {warm['length']:.0f} entries (window {window})")
    results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    next_id = window
    for r in range(rounds):
        for way in ("A", "B"):
            res = await one_round(client, settings, way, next_id, entries, tick)
            next_id += entries
            results[way].append(res)
            print(f"round {r + 1} {way}: " + ", ".join(f"{k} {v:.1f}" for k, v in res.items()))
    for way, label in (("A", "before: XADD MAXLEN ~ window"), ("B", "after: hard cap + trimmer")):
        rows = results[way]
        med = {k: statistics.median(x[k] for x in rows) for k in rows[0]}
        print(f"{way} {label}: median per entry: wall {med['wall_us']:.1f} us, client CPU "
              f"{med['client_cpu_us']:.1f} us, Redis CPU {med['server_cpu_us']:.1f} us; "
              f"tick {med['tick_ms']:.2f} ms; stream {med['length']:.0f} entries")
    await client.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=30_000, help="entries delivered per round")
    p.add_argument("--window", type=int, default=20_000, help="stream_maxlen")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tick", type=float, default=1.0, help="stream_trim_seconds")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        server = RedisServer(directory=base, socket_path=base / "redis.sock", port=port)
        server.start()
        try:
            asyncio.run(bench(server.url, args.entries, args.window, args.rounds, args.tick))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
