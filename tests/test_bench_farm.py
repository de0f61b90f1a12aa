"""The benchmark farm (bench/farm.py) serves what the suite's figures assume.

Its bytes are a pure function of (spec, feed, round), so two runs and two
contenders see the same documents; it honours validators (a warm phase is
all 304) and gzip; round 1 changes the stated fraction of feeds by the
stated number of items, round 2 every feed. Served for real on loopback.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import aiohttp
import feedparser
import pytest
from aiohttp import web

from bench.farm import Farm, FarmSpec, changed_in_round, feed_body

SPEC = FarmSpec(feeds=200, items=5, changed=0.1, new_items=3)


def test_documents_are_deterministic_news_items_in_rss_and_atom() -> None:
    assert feed_body(SPEC, 7, 0) == feed_body(FarmSpec(feeds=200, items=5, changed=0.1, new_items=3), 7, 0)
    rss, atom = feedparser.parse(feed_body(SPEC, 4, 0)), feedparser.parse(feed_body(SPEC, 5, 0))
    assert rss.version == "rss20" and atom.version == "atom10"
    assert len(rss.entries) == len(atom.entries) == 5
    size = len(feed_body(SPEC, 4, 0)) / 5
    assert 2000 < size < 3500  # ~2.5 KB a news item


def test_round_one_changes_the_stated_fraction_and_round_two_every_feed() -> None:
    changed = [n for n in range(SPEC.feeds) if changed_in_round(SPEC, n, 1)]
    assert 8 <= len(changed) <= 35  # 10% of 200, deterministic
    assert all(changed_in_round(SPEC, n, 2) for n in range(SPEC.feeds))
    feed = changed[0]
    before = {e.id for e in feedparser.parse(feed_body(SPEC, feed, 0)).entries}
    after = [e.id for e in feedparser.parse(feed_body(SPEC, feed, 1)).entries]
    assert len([i for i in after if i not in before]) == 3 and len(after) == 5
    still = next(n for n in range(SPEC.feeds) if n not in changed)
    assert feed_body(SPEC, still, 1) == feed_body(SPEC, still, 0)


@pytest.fixture
async def farm_url() -> AsyncIterator[str]:
    runner = web.AppRunner(Farm(SPEC).app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_validators_gzip_and_rounds_over_http(farm_url: str) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(f"{farm_url}/feed/3.xml", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await r.read()) == feed_body(SPEC, 3, 0)
            etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
        async with session.get(f"{farm_url}/feed/3.xml", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        async with session.get(f"{farm_url}/feed/3.xml", headers={"If-Modified-Since": modified}) as r:
            assert r.status == 304
        async with session.post(f"{farm_url}/control?round=2") as r:
            assert len((await r.json())["changed"]) == SPEC.feeds
        plain = {"If-None-Match": etag, "Accept-Encoding": "identity"}
        async with session.get(f"{farm_url}/feed/3.xml", headers=plain) as r:
            assert r.status == 200 and "Content-Encoding" not in r.headers
            assert await r.read() == feed_body(SPEC, 3, 2)
        async with session.get(f"{farm_url}/opml") as r:
            assert (await r.text()).count("xmlUrl=") == SPEC.feeds
        async with session.get(f"{farm_url}/feed/{SPEC.feeds}.xml") as r:
            assert r.status == 404
        # A round rendered ahead (the suite's way) serves the same documents.
        async with session.post(f"{farm_url}/control?round=3&prerender=1") as r:
            assert r.status == 200
        async with session.get(f"{farm_url}/feed/5.xml", headers={"Accept-Encoding": "gzip"}) as r:
            assert gzip.decompress(await r.read()) == feed_body(SPEC, 5, 3)
