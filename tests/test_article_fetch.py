"""The article fetcher's I/O shell (#15): conditional requests for pages fetched again,
and the deadline on reading a page, on the loopback news site (tests/articleserver.py),
real Redis and, for the deadline, a real worker process (SIGALRM is armed only there)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.poll.fetch import new_session
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from tests.articleserver import ArticleSite
from tests.conftest import INGEST, env_for
from tests.helpers import stop_process, stream_records
from workers.article.extract import extract_article
from workers.article.fetch import ArticleFetcher
from workers.article.metadata import PageMeta
from workers.article.pagecache import KeptPage, decode_page, encode_page, page_hash


@pytest.fixture(scope="module")
def site() -> Iterator[ArticleSite]:
    server = ArticleSite()
    server.start()
    yield server
    server.stop()



def test_a_kept_page_reads_back_as_it_was_and_a_damaged_one_as_nothing() -> None:
    article = extract_article(b"<html><body><article><p>One &amp; two.</p><p>Three.</p></article></body></html>",
                              "http://a/x")
    assert article is not None
    meta = PageMeta(canonical="http://a/x", headline="H", published_at="2020-01-16T12:21:00Z", authors=["Yonhap"])
    kept = KeptPage(etag='"e1"', last_modified=None, status="ok", article=article, meta=meta)
    assert decode_page(encode_page(kept)) == kept
    empty = KeptPage(etag=None, last_modified="Thu, 16 Jan 2020 12:21:00 GMT", status="empty", article=None,
                     meta=meta)
    assert decode_page(encode_page(empty)) == empty
    for damaged in (None, b"", b"not zlib", encode_page(kept)[:-3]):
        assert decode_page(damaged) is None
    assert len(page_hash("http://a/x")) == 32


async def test_a_page_fetched_again_is_asked_for_conditionally_and_a_304_reuses_its_text(
    settings: Settings, site: ArticleSite, client: aioredis.Redis,
) -> None:
    keys = Keys(settings.namespace)
    session = new_session(settings)
    url = site.url("/news/jsonld-only")
    try:
        fetcher = ArticleFetcher(session, client, keys, settings)
        first = await fetcher.page(url)
        assert first.status == "ok" and not first.not_modified
        assert site.not_modified.get("/news/jsonld-only") is None
        key = keys.article_page(page_hash(url))
        assert 0 < await client.ttl(key) <= settings.full_text_page_ttl
        hits = site.hits["/news/jsonld-only"]
        again = await ArticleFetcher(session, client, keys, settings).page(url)  # another job, later
        assert again.not_modified and site.not_modified["/news/jsonld-only"] == 1
        assert site.hits["/news/jsonld-only"] == hits + 1  # asked once, answered 304
        assert (again.status, again.article, again.meta) == (first.status, first.article, first.meta)

        # A page without validators is not kept; with full_text_page_ttl 0 nothing is.
        await client.delete(key)
        off = dataclasses.replace(settings, full_text_page_ttl=0)
        assert (await ArticleFetcher(session, client, keys, off).page(url)).status == "ok"
        assert not await client.exists(key)
        assert (await ArticleFetcher(session, client, keys, off).page(url)).not_modified is False
        assert site.not_modified["/news/jsonld-only"] == 1

        # A kept page that cannot be read back costs a full fetch, nothing else.
        await client.set(key, b"damaged", ex=60)
        plain = await ArticleFetcher(session, client, keys, settings).page(url)
        assert plain.status == "ok" and not plain.not_modified and plain.article == first.article
    finally:
        await session.close()


async def test_a_page_too_slow_to_read_is_stopped_at_its_deadline_counted_and_the_feed_text_kept(
    settings: Settings, site: ArticleSite, client: aioredis.Redis, tmp_path: Path,
) -> None:
    """In a real worker process: each hostile page's reading (~35 s unbounded) is stopped
    at parse_deadline, its item keeps the feed's text marked "too_slow", the page beside
    them is read, and a job enqueued meanwhile on the same worker is not held beyond them.
    The two readings together (4 s) outlast the stall limit (parse_deadline + 1 s of grace
    here); should they fall in one turn of the event loop, each ended section still proves
    the worker alive (tests/test_deadline.py), so it is never taken for stuck."""
    keys = Keys(settings.namespace)
    deadline = 2.0
    env = {**env_for(settings), "INGEST_LOG_LEVEL": "INFO", "INGEST_PARSE_DEADLINE": str(deadline),
           "INGEST_FULL_TEXT": "auto", "INGEST_WORKER_STALL_GRACE": "1", "INGEST_FULL_TEXT_DEADLINE": "60",
           "INGEST_MAX_BODY_BYTES": "2000000"}
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([*INGEST, "worker"], env=env, stdout=out, stderr=out, start_new_session=True)
    pool = await connect_arq(settings)
    try:
        bad = await pool.enqueue_job("fetch_once", site.url("/hostile.xml"))
        assert bad is not None
        started = time.monotonic()
        for _ in range(1200):  # bounded: until the hostile page is served (its reading begins)
            if site.hits.get("/news/hostile"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        good = await pool.enqueue_job("fetch_once", site.url("/flaky.xml"))  # while it is read
        assert good is not None
        good_enqueued = time.monotonic()
        good_result = await good.result(timeout=90, poll_delay=0.05)
        good_after = time.monotonic() - good_enqueued
        bad_result = await bad.result(timeout=90, poll_delay=0.05)
        bad_after = time.monotonic() - started
    finally:
        await pool.aclose()
        code = stop_process(proc, 30)
    output = log.read_text()
    assert bad_result.get("new") == 3 and good_result.get("new") == 2, output[-3000:]
    records = {r["guid"]: r for r in await stream_records(client, keys)}
    for guid in ("h-0", "h-1"):
        hostile = records[guid]
        assert (hostile["content_source"], hostile["article_status"]) == ("feed", "too_slow"), output[-3000:]
    assert records["h-0"]["content_text"] == "Its page keeps an extractor busy."
    assert records["h-2"]["content_source"] == "article"  # the other page of that feed was read
    assert (await client.hgetall(keys.stats))[b"article_deadline_exceeded"] == b"2"
    assert "event loop stuck" not in output
    assert "reading the page ran past" in output
    # Loose bounds (a shared machine; unbounded, reading the page alone takes ~35 s on a
    # quiet one, minutes under load).
    assert 2 * deadline <= bad_after < 30, output[-3000:]
    assert good_after < deadline + 30, output[-3000:]
    assert code == 0, output[-3000:]  # the same process carried on and stopped cleanly
    print(f"\nhostile page stopped after {bad_after:.1f} s (deadline {deadline:g} s); "
          f"the job beside it finished after {good_after:.1f} s")
