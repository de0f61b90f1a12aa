"""Cost per entry of each stage, in one process, on the farm's documents (bench/farm.py).

For before/after comparisons under the same load: run it against an older
tree with PYTHONPATH pointing there, alternating with the current one.

    .venv/bin/python bench/bench_stages.py [--feeds 40] [--rounds 3]
    PYTHONPATH=/tmp/old-tree .venv/bin/python bench/bench_stages.py

Stages timed (best of --rounds; CPU microseconds of this process per entry,
so that other load on the machine counts less): parse_feed_bytes as the
service runs it (the fast lxml reader, workers/fastfeed), the same with
feedparser only (`fast_parser = false`), the fast path where 9 entries in 10 are
known by their bytes (workers/rawseen.py, #21), and each by format (RSS 2.0, Atom);
normalize_entry (the whole record); within it html_to_paragraphs,
sanitize_html, canonical_url and fix_mojibake on the same inputs; the SQLite
sink's upsert of the records (one transaction per 500, the full-text index included).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.farm import FarmSpec, feed_body  # noqa: E402
from ingest.models import FeedSpec, item_to_json  # noqa: E402
from ingest.store.sqlite import SQLiteSink  # noqa: E402
from ingest.urls import canonical_url  # noqa: E402
from workers.normalize.clean import fix_mojibake, html_to_paragraphs, sanitize_html  # noqa: E402
from workers.normalize.record import normalize_entry  # noqa: E402
from workers.parse import parse_feed_bytes  # noqa: E402


def documents(feeds: int) -> list[tuple[str, bytes]]:
    spec = FarmSpec(feeds=feeds, items=30)
    return [(f"http://127.0.0.1/feed/{n}.xml", feed_body(spec, n, 0)) for n in range(feeds)]


def parse_known(docs: list[tuple[str, bytes]]) -> Any:
    """The fast path where 9 entries in 10 are known by their bytes (workers/rawseen.py,
    the benchmark's mixed phase); absent from a tree without it."""
    try:
        from workers.fastfeed import KnownEntries  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    known = []
    for url, body in docs:
        raws = parse_feed_bytes(body, {}, url, known=KnownEntries(b"", {}))["entry_raws"]
        known.append(KnownEntries(b"", {r: True for i, r in enumerate(raws) if i % 10}))

    def run() -> None:
        for (url, body), k in zip(docs, known, strict=True):
            parse_feed_bytes(body, {}, url, known=k)
    return run


def best(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--feeds", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    docs = documents(args.feeds)
    parsed = [(url, parse_feed_bytes(body, {}, url)) for url, body in docs]
    entries = [(url, d["feed"], e) for url, d in parsed for e in d["entries"]]
    n = len(entries)
    spec = FeedSpec("bench", "http://127.0.0.1/")
    bodies = [e.get("summary") or "" for _, _, e in entries]
    links = [e.get("link") for _, _, e in entries]
    cleaned = [sanitize_html(b, None) for b in bodies]
    print(f"{len(docs)} documents, {n} entries; best of {args.rounds} rounds, us per entry")

    def parse(fast: bool, which: int | None = None) -> Any:
        def run() -> None:
            for i, (url, body) in enumerate(docs):
                if which is None or i % 2 == which:
                    parse_feed_bytes(body, {}, url, fast=fast)
        return run

    per_format = n / 2  # even documents are RSS 2.0, odd ones Atom, same number of items

    items: list[Any] = []

    def normalize() -> None:
        items[:] = [normalize_entry(e, f, spec, url, "2026-01-01T00:00:00Z") for url, f, e in entries]

    figures = {
        "parse (fast path)": best(parse(True), args.rounds),
        "parse (feedparser only)": best(parse(False), args.rounds),
        **({"parse, 9 in 10 entries known": best(run, args.rounds)} if (run := parse_known(docs)) else {}),
        "  RSS 2.0, fast path": best(parse(True, 0), args.rounds) * n / per_format,
        "  RSS 2.0, feedparser": best(parse(False, 0), args.rounds) * n / per_format,
        "  Atom 1.0, fast path": best(parse(True, 1), args.rounds) * n / per_format,
        "  Atom 1.0, feedparser": best(parse(False, 1), args.rounds) * n / per_format,
        "normalize_entry (all)": best(normalize, args.rounds),
        "  html_to_paragraphs": best(lambda: [html_to_paragraphs(c) for c in cleaned], args.rounds),
        "  sanitize_html": best(lambda: [sanitize_html(b, "http://x.example/") for b in bodies], args.rounds),
        "  canonical_url": best(lambda: [canonical_url(u) for u in links], args.rounds),
        "  fix_mojibake": best(lambda: [fix_mojibake(b) for b in bodies], args.rounds),
    }
    import orjson

    records = [orjson.loads(item_to_json(i)) for i in items]
    for i, r in enumerate(records):
        r["version"] = 1
        r["id"] = f"{i:032x}"

    async def store() -> float:
        times = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                sink = SQLiteSink(Path(tmp) / "items.db")
                await sink.open()
                start = time.process_time()
                for s in range(0, len(records), 500):
                    await sink.upsert(records[s:s + 500])
                await sink.close()  # feeds the full-text index with what is left: part of the cost
                times.append(time.process_time() - start)
        return min(times)

    figures["sqlite upsert (500 a batch)"] = asyncio.run(store())
    for name, seconds in figures.items():
        print(f"{name:32} {1e6 * seconds / n:8.1f}")


if __name__ == "__main__":
    main()
