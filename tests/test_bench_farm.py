"""The benchmark farm (bench/farm.py) serves what the suite's figures assume.

Its bytes are a pure function of (spec, feed, round), so two runs and two
contenders see the same documents; it honours validators (a warm phase is
all 304) and gzip; round 1 changes the stated fraction of feeds by the
stated number of items, round 2 every feed. Served for real on loopback.
In summary-only mode (#15) the items carry a teaser and link to 60-200 KB
article pages on the farm itself, which honour validators and gzip too.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import aiohttp
import feedparser
import pytest
from aiohttp import web

from bench.farm import Farm, FarmSpec, article_page, changed_in_round, feed_body, page_url, teaser
from workers.article.extract import extract_article
from workers.article.policy import should_fetch, word_count

SPEC = FarmSpec(feeds=200, items=5, changed=0.1, new_items=3)
SUMMARY = FarmSpec(feeds=20, items=4, changed=0.1, new_items=3, summary_only=True)
BASE = "http://127.0.0.1:8999"


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


def test_summary_only_items_carry_a_teaser_and_link_to_the_farms_article_pages() -> None:
    for feed in (4, 5):  # RSS and Atom
        parsed = feedparser.parse(feed_body(SUMMARY, feed, 0, BASE))
        assert len(parsed.entries) == SUMMARY.items
        for entry, number in zip(parsed.entries, range(SUMMARY.items - 1, -1, -1), strict=True):
            assert entry.link == page_url(BASE, feed, number) == f"{BASE}/article/{feed}/{number}.html"
            assert entry.summary == teaser(SUMMARY, feed, number)
            assert "content" not in entry and entry.summary.count(".") == 1
            # Under the default threshold: `full_text = "auto"` fetches the page.
            assert should_fetch("auto", entry.summary, 80, entry.link)
    assert feed_body(SUMMARY, 4, 0, BASE) == feed_body(FarmSpec(feeds=20, items=4, summary_only=True), 4, 0, BASE)


def test_article_pages_are_realistic_news_pages_whose_story_extracts() -> None:
    sizes = [len(article_page(SUMMARY, feed, n)) for feed in range(SUMMARY.feeds) for n in range(SUMMARY.items)]
    assert 60_000 <= min(sizes) and max(sizes) <= 200 * 1024
    assert max(sizes) - min(sizes) > 50_000  # spread over the range, not one size
    page = article_page(SUMMARY, 3, 1)
    assert page == article_page(FarmSpec(feeds=20, items=4, summary_only=True), 3, 1)
    html = page.decode()
    for boilerplate in ("<nav>", "cookie-banner", "application/ld+json", 'class="share"', 'class="related"',
                        'class="comments"', "<footer>", "<style>", "<script>"):
        assert boilerplate in html
    article = extract_article(page, page_url(BASE, 3, 1))
    assert article is not None and len(article.paragraphs) >= 8
    assert word_count(article.content_text) > 10 * word_count(teaser(SUMMARY, 3, 1))
    assert "cookies" not in article.content_text and "Copyright" not in article.content_text


@pytest.fixture
async def summary_farm() -> AsyncIterator[tuple[Farm, str]]:
    farm = Farm(SUMMARY)
    runner = web.AppRunner(farm.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    farm.base = f"http://127.0.0.1:{port}"
    yield farm, farm.base
    await runner.cleanup()


async def test_summary_only_links_lead_to_pages_with_validators_304_and_gzip(
        summary_farm: tuple[Farm, str]) -> None:
    farm, base = summary_farm
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.post(f"{base}/control?round=0&prerender=1") as r:
            assert r.status == 200
        assert len(farm.pages) == SUMMARY.feeds * SUMMARY.items  # rendered ahead with the documents
        async with session.get(f"{base}/feed/6.xml", headers={"Accept-Encoding": "gzip"}) as r:
            link = feedparser.parse(gzip.decompress(await r.read())).entries[0].link
        assert link == f"{base}/article/6/{SUMMARY.items - 1}.html"
        async with session.get(link, headers={"Accept-Encoding": "gzip"}) as r:
            assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
            assert r.content_type == "text/html"
            body = gzip.decompress(await r.read())
            etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
        assert body == article_page(SUMMARY, 6, SUMMARY.items - 1) and 60_000 <= len(body) <= 200 * 1024
        async with session.get(link, headers={"If-None-Match": etag}) as r:
            assert r.status == 304 and r.headers["ETag"] == etag and await r.read() == b""
        async with session.get(link, headers={"If-Modified-Since": modified}) as r:
            assert r.status == 304
        async with session.get(link, headers={"If-None-Match": '"other"', "Accept-Encoding": "identity"}) as r:
            assert r.status == 200 and "Content-Encoding" not in r.headers and await r.read() == body
        async with session.get(f"{base}/robots.txt") as r:
            assert r.status == 200 and "Allow: /" in await r.text() and "Disallow" not in await r.text()
        # Only items a feed has listed so far have a page.
        async with session.get(f"{base}/article/6/{SUMMARY.items}.html") as r:
            assert r.status == 404
        async with session.get(f"{base}/article/{SUMMARY.feeds}/0.html") as r:
            assert r.status == 404
    assert farm.served["page-304"] == 2 and farm.served["page-200-gzip"] == 1 and farm.served["page-200"] == 1


async def test_a_farm_with_full_stories_serves_no_article_pages(farm_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{farm_url}/article/3/0.html") as r:
            assert r.status == 404
        async with session.get(f"{farm_url}/feed/3.xml") as r:
            entry = feedparser.parse(await r.read()).entries[0]
    assert "127.0.0.1" not in entry.link and word_count(entry.content[0].value) > 80
