"""Benchmark: WebSub publish at a hub -> item on the stream, through a real `ingest run`.

A test hub (tests/websubhub.py) on loopback serves two feeds that announce
it, and the article pages of their entries; `ingest run` (bench/service.py:
private redis-server, HTTP server with `public_url`, poller, workers, renewal
loop) polls the feeds, finds the hub, subscribes and is verified, all by
itself. The service runs with the defaults users have for everything that
touches a push: `full_text = "auto"` and the per-host politeness
(`per_host_concurrency` 2, `host_min_delay` 1 s; the suite's farm opens those
for its single host, this bench does not). Then (#21):

  sequential  for each --gaps G: --sequential pushes, one at a time, each G
              seconds after the previous item reached the stream (G = 0: one
              after another; G = 1: the workers idle between pushes), of one new
              teaser entry whose article page is on the hub's host: from the
              hub's POST to that entry's first version on <ns>:items; p50, p99,
              max, how many within 10 s, and when its article text followed
  burst       --batch pushes of --per-push entries each, --concurrency at a
              time, to the second feed (`--full-text off`, so only the push
              path is measured): items per second until all are on the
              stream, and per push the POST -> its last item, p50/p99

Every wait is bounded: a pushed entry not on the stream after --wait seconds
counts as missing. `--push-full-text-deadline S` sets that setting (10: the
behaviour before #21, pushed items waiting for their article pages like
polled ones), for before/after runs. Run:
  .venv/bin/python bench/bench_push.py --sequential 20 --gaps 0,1 --batch 500 --per-push 10 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service import Service  # noqa: E402
from ingest.deliver.streamcodec import decode_item  # noqa: E402
from tests.websubhub import WebSubHub, article_page  # noqa: E402

WITHIN = 10.0  # the bound: a push's item on the stream within 10 s


def atom(hub: str, topic: str, entries: range, page: str = "https://pub.example/") -> bytes:
    """A feed document of `entries`: one-sentence teasers (full_text "auto" wants their pages)."""
    body = "".join(
        f"<entry><id>urn:bench:{n}</id><title>Story {n}</title><link href='{page}{n}'/>"
        f"<updated>2026-11-30T10:00:00Z</updated><content type='html'>&lt;p&gt;Story number {n}, pushed "
        f"by the hub.&lt;/p&gt;</content></entry>" for n in entries)
    return (f"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>Bench</title>"
            f"<id>urn:bench</id><updated>2026-11-30T10:00:00Z</updated><link rel='hub' href='{hub}'/>"
            f"<link rel='self' href='{topic}'/>{body}</feed>").encode()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class StreamWatch:
    """Reads <ns>:items as it grows: when each story's first version, and its version
    with the article's text, were seen (perf_counter)."""

    redis: aioredis.Redis
    stream: str
    last: bytes = b"$"
    first: dict[str, float] = field(default_factory=dict)
    article: dict[str, float] = field(default_factory=dict)
    entries: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            reply = await self.redis.xread({self.stream: self.last}, count=1000, block=1000)
            now = time.perf_counter()
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    self.last = entry_id
                    self.entries += 1
                    record = orjson.loads(decode_item(fields[b"item"]))
                    self.first.setdefault(record["title"], now)
                    if record.get("content_source") == "article":
                        self.article.setdefault(record["title"], now)
            if reply:
                self._changed.set()
                self._changed = asyncio.Event()

    async def wait_for(self, titles: list[str], timeout: float) -> bool:
        """True once every title's first version is on the stream; False past `timeout`."""
        return await self._wait(self.first, titles, timeout)

    async def wait_for_articles(self, titles: list[str], timeout: float) -> bool:
        """True once every title's version with the article's text is on the stream."""
        return await self._wait(self.article, titles, timeout)

    async def _wait(self, seen: dict[str, float], titles: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not all(t in seen for t in titles):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return False
        return True


async def wait_subscribed(hub: WebSubHub, topic: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not hub.live(topic):
        if time.monotonic() > deadline:
            raise SystemExit(f"not subscribed to {topic} within {timeout:.0f} s (verifications: "
                             f"{hub.verifications}, requests: {hub.requests})")
        await asyncio.sleep(0.1)


async def sequential(hub: WebSubHub, watch: StreamWatch, topic: str, numbers: range, gap: float,
                     wait: float) -> dict[str, Any]:
    """One push at a time: `gap` seconds of quiet, publish one entry, wait for it."""
    latencies: list[float] = []
    missing = 0
    published: dict[str, float] = {}
    for n in numbers:
        await asyncio.sleep(gap)
        hub.pages[str(n)] = article_page(n)
        body = atom(hub.url, topic, range(n, n + 1), hub.page_url(""))
        started = time.perf_counter()
        assert await hub.publish(topic, body) == [202]
        published[f"Story {n}"] = started
        if await watch.wait_for([f"Story {n}"], wait):
            latencies.append(watch.first[f"Story {n}"] - started)
        else:
            missing += 1
    # The article pages follow at the host's pace (a page a second): wait for them, bounded.
    await watch.wait_for_articles(list(published), 2.0 * len(numbers) + wait)
    follow = [watch.article[t] - s for t, s in published.items() if t in watch.article]
    return {"pushes": len(numbers), "gap": gap, "latencies": latencies, "missing": missing,
            "within": sum(1 for x in latencies if x <= WITHIN), "article_latencies": follow}


async def burst(hub: WebSubHub, watch: StreamWatch, topic: str, base: int, args: argparse.Namespace) -> dict[str, Any]:
    """--batch pushes of --per-push entries, --concurrency at a time."""
    gate = asyncio.Semaphore(args.concurrency)
    ranges = [range(base + i * args.per_push, base + (i + 1) * args.per_push) for i in range(args.batch)]
    bodies = [atom(hub.url, topic, r) for r in ranges]
    sent: list[float] = [0.0] * len(bodies)

    async def one(i: int) -> None:
        async with gate:
            sent[i] = time.perf_counter()
            assert await hub.publish(topic, bodies[i]) == [202]

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(bodies))))
    accepted = time.perf_counter() - started
    titles = [f"Story {n}" for r in ranges for n in r]
    complete = await watch.wait_for(titles, args.wait * 30)
    elapsed = max((watch.first.get(t, 0.0) for t in titles), default=started) - started
    per_push = [max(watch.first[f"Story {n}"] for n in r) - sent[i] for i, r in enumerate(ranges)
                if all(f"Story {n}" in watch.first for n in r)]
    return {"pushes": args.batch, "per_push": args.per_push, "concurrency": args.concurrency,
            "accepted_seconds": accepted, "seconds": elapsed, "items": sum(t in watch.first for t in titles),
            "want": len(titles), "complete": complete, "latencies": per_push}


async def measure(args: argparse.Namespace, svc: Service) -> dict[str, Any]:
    """Start the service, let it subscribe to both feeds, run the modes; the figures."""
    hub = WebSubHub()
    await hub.start()
    teasers, plain = hub.feed_url("bench"), hub.feed_url("burst")
    hub.documents["bench"] = atom(hub.url, teasers, range(0, 1), hub.page_url(""))
    hub.pages["0"] = article_page(0)
    hub.documents["burst"] = atom(hub.url, plain, range(10_000_000, 10_000_001))
    redis = aioredis.Redis.from_url(svc.redis_server.url)
    watcher: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(svc.ingest, "add", teasers)
        await asyncio.to_thread(svc.ingest, "add", plain, "--full-text", "off")
        await asyncio.to_thread(svc.start)
        watch = StreamWatch(redis, svc.keys.items_stream, last=b"0-0")
        watcher = asyncio.create_task(watch.run())
        try:
            for topic in (teasers, plain):  # the poll finds the hub; the renewal loop subscribes
                await wait_subscribed(hub, topic, 120)
        except SystemExit:
            print(svc.log_path.read_text()[-3000:], file=sys.stderr)
            raise
        if not await watch.wait_for(["Story 0", "Story 10000000"], 60):  # the polled entries first
            raise SystemExit("the polled entries did not reach the stream within 60 s")
        await asyncio.sleep(3.0)  # the first poll's article page and its host's announcement settle
        out: dict[str, Any] = {"sequential": []}
        n = 1
        for gap in args.gaps:
            numbers = range(n, n + args.sequential)
            out["sequential"].append(await sequential(hub, watch, teasers, numbers, gap, args.wait))
            n += args.sequential
        if args.batch:
            out["burst"] = await burst(hub, watch, plain, 1_000_000, args)
        stats = {k.decode(): v.decode() for k, v in (await redis.hgetall(svc.keys.stats)).items()
                 if re.match(rb"push_|article_", k)}
        out["counters"] = {k: stats[k] for k in sorted(stats) if "bucket" not in k}
        return out
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await asyncio.to_thread(svc.stop)
        await redis.aclose()
        await hub.close()


def report(out: dict[str, Any], deadline: str) -> list[str]:
    """Human-readable lines of `measure`'s figures."""
    lines = []
    for seq in out["sequential"]:
        lat = seq["latencies"]
        how = ("one after another" if not seq["gap"] else f"{seq['gap']:g} s idle before each")
        figures = (f"p50 {percentile(lat, 50) * 1000:,.1f} ms, p99 {percentile(lat, 99) * 1000:,.1f} ms, "
                   f"max {max(lat) * 1000:,.1f} ms" if lat else "none arrived")
        follow = seq["article_latencies"]
        article = (f"; the article's text followed as version 2 for {len(follow)}/{seq['pushes']}, "
                   f"p50 {percentile(follow, 50):.2f} s, max {max(follow):.2f} s after the POST"
                   if follow else "; no article text followed")
        lines.append(f"push one at a time ({how}), {seq['pushes']} pushes of 1 teaser: {seq['within']}/"
                     f"{seq['pushes']} within {WITHIN:g} s, {figures}{article}")
    if "burst" in out:
        b = out["burst"]
        lat = b["latencies"]
        lines.append(
            f"push burst, {b['pushes']} pushes x {b['per_push']} items, {b['concurrency']} at a time: "
            f"{b['items']}/{b['want']} items on the stream in {b['seconds']:.2f} s = "
            f"{b['items'] / max(b['seconds'], 1e-9):,.0f} items/s (202s: {b['pushes'] / b['accepted_seconds']:,.0f}"
            f" pushes/s); per push, POST -> its last item: p50 {percentile(lat, 50) * 1000:,.0f} ms, "
            f"p99 {percentile(lat, 99) * 1000:,.0f} ms" if lat else "push burst: nothing arrived")
    lines.append(f"push_full_text_deadline: {deadline}; counters {out['counters']}")
    return lines


def run_service(args: argparse.Namespace, workers: int | None = None) -> dict[str, Any]:
    """A fresh service in a temporary directory, `measure` on it."""
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        svc = Service(Path(tmp), workers, log_level=args.log_level, full_text="auto")
        config = svc.config.read_text()
        listen = re.search(r'listen = "([^"]+)"', config)
        assert listen is not None
        # The users' politeness: the farm's opened per-host limits are taken out again.
        config = re.sub(r"(?m)^(per_host_concurrency|host_min_delay) = .*\n", "", config)
        config += f'public_url = "http://{listen.group(1)}"\npush_poll_interval = 86400\n'
        if args.push_full_text_deadline is not None:
            config += f"push_full_text_deadline = {args.push_full_text_deadline}\n"
        svc.config.write_text(config)
        svc.start_redis()
        try:
            return asyncio.run(measure(args, svc))
        finally:
            svc.redis_server.stop()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequential", type=int, default=20, help="pushes per --gaps value")
    p.add_argument("--gaps", type=lambda s: [float(x) for x in s.split(",") if x], default=[0.0, 1.0],
                   help="seconds of quiet before each sequential push, comma separated (default 0,1)")
    p.add_argument("--batch", type=int, default=500, help="burst pushes (0: no burst)")
    p.add_argument("--per-push", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--wait", type=float, default=30.0, help="seconds a sequential push may take before it "
                                                             "counts as missing")
    p.add_argument("--push-full-text-deadline", type=float, default=None,
                   help="the setting (default: the service's default, 0); 10 = before #21")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--log-level", default="WARNING")
    return p


def main() -> None:
    args = parser().parse_args()
    out = run_service(args, args.workers)
    deadline = "default" if args.push_full_text_deadline is None else f"{args.push_full_text_deadline:g} s"
    print("\n".join(report(out, deadline)))


if __name__ == "__main__":
    main()
