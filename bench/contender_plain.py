"""A plain aiohttp + feedparser loop as a bench contender: what a user writes in an afternoon.

Conditional GETs (ETag / Last-Modified kept in memory), 50 requests at once,
feedparser with its defaults on the event loop, new entries (by feed + id)
inserted into SQLite in one transaction per feed. No normalization, no dedup
across versions, no delivery: the floor a service is measured against.

Driven by bench/suite.py like contender_reader.py: `update` / `quit` lines on
stdin, one JSON line per update on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp
import feedparser

__all__ = ["main"]


class Plain:
    def __init__(self, db: str, urls: list[str]) -> None:
        self.urls = urls
        self.validators: dict[str, dict[str, str]] = {}
        self.db = sqlite3.connect(db)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS entries (feed TEXT, id TEXT, title TEXT, "
                        "link TEXT, published TEXT, summary TEXT, PRIMARY KEY (feed, id))")

    async def one(self, session: aiohttp.ClientSession, url: str, gate: asyncio.Semaphore) -> int:
        async with gate:
            headers = self.validators.get(url, {})
            try:
                async with session.get(url, headers=headers) as response:
                    if response.status != 200:
                        return 0
                    body = await response.read()
                    response_headers = dict(response.headers)
            except aiohttp.ClientError:
                return 0
        remembered = {}
        if "ETag" in response_headers:
            remembered["If-None-Match"] = response_headers["ETag"]
        if "Last-Modified" in response_headers:
            remembered["If-Modified-Since"] = response_headers["Last-Modified"]
        self.validators[url] = remembered
        parsed = feedparser.parse(body, response_headers={k.lower(): v for k, v in response_headers.items()})
        rows = [(url, e.get("id") or e.get("link") or e.get("title", ""), e.get("title"), e.get("link"),
                 e.get("published"), e.get("summary")) for e in parsed.entries]
        before = self.db.total_changes
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?, ?)", rows)
        return self.db.total_changes - before

    async def update(self) -> int:
        gate = asyncio.Semaphore(50)
        async with aiohttp.ClientSession() as session:
            counts = await asyncio.gather(*(self.one(session, url, gate) for url in self.urls))
        return sum(counts)


def main() -> None:
    db, urls_file = sys.argv[1], sys.argv[2]
    plain = Plain(db, Path(urls_file).read_text().split())
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        start = time.perf_counter()
        new = asyncio.run(plain.update())
        print(json.dumps({"seconds": time.perf_counter() - start, "new": new, "feeds": len(plain.urls)}),
              flush=True)


if __name__ == "__main__":
    main()
