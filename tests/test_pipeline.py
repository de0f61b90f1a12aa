"""End to end on real parts: HTTP server -> arq worker -> Redis stream/channels -> SQLite."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import redis.asyncio as aioredis

from ingest.deliver.streamcodec import ZSTD_MAGIC, decode_item
from ingest.keys import Keys
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from tests.feedserver import FeedServer
from tests.helpers import (
    collect_messages,
    drain_sink,
    feed_id_of,
    run_cli,
    stored_rows,
    stream_records,
)

MEDIA_RSS = "feeds/rss2-mediarss.xml"  # a front page of 6 stories with Media RSS pictures



async def test_enqueue_delivers_to_stream_channels_and_sqlite_once(
    settings: Settings, feed_server: FeedServer, worker: None, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    url = feed_server.url(MEDIA_RSS)
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.items_channel, keys.feed_channel(feed_id_of(url)))

    code, out, err = await run_cli(settings, "enqueue", "--wait", url)
    assert code == 0, err
    assert "6 new, 0 updated" in out

    records = await stream_records(client, keys)
    assert len(records) == 6
    assert len({r["id"] for r in records}) == 6
    assert {r["version"] for r in records} == {1}
    assert {r["feed_id"] for r in records} == {feed_id_of(url)}
    assert all(r["feed_title"] for r in records)

    messages = await collect_messages(pubsub, 12, timeout=10)
    assert len(messages) == 12  # every item on both channels
    stored = [fields[b"item"] for _, fields in await client.xrange(keys.items_stream)]
    assert all(v.startswith(ZSTD_MAGIC) for v in stored)  # the default: compressed on the stream
    stream_json = [decode_item(v) for v in stored]
    assert sorted(messages[::1]) == sorted(stream_json * 2)  # byte for byte the same JSON

    assert await drain_sink(client, settings) == 6
    rows = stored_rows(settings)
    assert set(rows) == {r["id"] for r in records}

    # Again: nothing new anywhere.
    code, out, err = await run_cli(settings, "enqueue", "--wait", url)
    assert code == 0, err
    assert "0 new, 0 updated, 6 unchanged" in out
    assert await client.xlen(keys.items_stream) == 6
    assert await collect_messages(pubsub, 1, timeout=0.5) == []
    assert await drain_sink(client, settings) == 0
    assert len(stored_rows(settings)) == 6
    await pubsub.aclose()


def _feed(items: list[tuple[str, str]]) -> bytes:
    body = "".join(
        f"<item><guid>{guid}</guid><title>Story {guid}</title><link>http://ex.example/{guid}</link>"
        f"<pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate><description>{text}</description></item>"
        for guid, text in items
    )
    return f'<rss version="2.0"><channel><title>Updates</title>{body}</channel></rss>'.encode()


async def test_changed_entry_is_delivered_again_with_next_version(
    settings: Settings, feed_server: FeedServer, worker: None, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    url = feed_server.serve("updates.xml", _feed([("a", "First text."), ("b", "Other text.")]))
    pool = await connect_arq(settings)
    try:
        first = await (await pool.enqueue_job("fetch_once", url)).result(timeout=30)
        assert (first["new"], first["updated"]) == (2, 0)

        # Only whitespace changes: the raw entry differs, the record does not.
        feed_server.serve("updates.xml", _feed([("a", "First   text. "), ("b", "Other text.")]))
        same = await (await pool.enqueue_job("fetch_once", url)).result(timeout=30)
        assert (same["new"], same["updated"], same["unchanged"]) == (0, 0, 2)

        feed_server.serve("updates.xml", _feed([("a", "First text, corrected."), ("b", "Other text.")]))
        second = await (await pool.enqueue_job("fetch_once", url)).result(timeout=30)
        assert (second["new"], second["updated"], second["unchanged"]) == (0, 1, 1)
    finally:
        await pool.aclose()

    records = await stream_records(client, keys)
    assert [(r["title"], r["version"]) for r in records] == [
        ("Story a", 1), ("Story b", 1), ("Story a", 2)]
    assert records[2]["content_text"] == "First text, corrected."
    assert records[2]["id"] == records[0]["id"]
    assert records[2]["content_hash"] != records[0]["content_hash"]

    await drain_sink(client, settings)
    rows = stored_rows(settings)
    assert rows[records[0]["id"]]["version"] == 2
    assert rows[records[0]["id"]]["content_text"] == "First text, corrected."


async def test_duplicate_concurrent_jobs_deliver_each_item_once(
    settings: Settings, feed_server: FeedServer, worker: None, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    url = feed_server.url("feeds/rss1-rdf-bom.xml")  # 8 items
    pool = await connect_arq(settings)
    try:
        jobs = [await pool.enqueue_job("fetch_once", url) for _ in range(4)]
        results = await asyncio.gather(*(job.result(timeout=30) for job in jobs if job))
    finally:
        await pool.aclose()
    assert sum(r["new"] for r in results) == 8
    records = await stream_records(client, keys)
    assert len(records) == 8
    assert len({r["id"] for r in records}) == 8


@pytest.mark.parametrize(
    ("path", "message"),
    [("status/404", "HTTP 404"), ("page.html", "not a feed"), ("status/500", "HTTP 500")],
)
async def test_failed_fetch_or_parse_is_reported_and_leaves_nothing(
    settings: Settings, feed_server: FeedServer, worker: None, client: aioredis.Redis,
    path: str, message: str,
) -> None:
    keys = Keys(settings.namespace)
    url = feed_server.url(path)
    code, out, err = await run_cli(settings, "enqueue", "--wait", url)
    assert code == 1
    assert message in err and url in err
    assert await client.xlen(keys.items_stream) == 0
    assert await client.keys(f"{settings.namespace}:item:*") == []
    assert await client.keys(f"{settings.namespace}:feed:*") == []
    stats = await client.hgetall(keys.stats)
    counter = b"parse_errors" if "feed" in message else b"fetch_errors"
    assert stats[counter] == b"1"
    dead = await client.xrange(keys.dead_stream)
    if counter == b"parse_errors":
        assert len(dead) == 1 and dead[0][1][b"kind"] == b"parse"
        assert message.encode() in dead[0][1][b"error"]
    else:
        assert dead == []


async def test_only_http_urls_are_accepted(settings: Settings, worker: None, client: aioredis.Redis) -> None:
    code, _, err = await run_cli(settings, "enqueue", "--wait", "file:///etc/passwd")
    assert code == 1
    assert "only http and https" in err and "refused" in err
    assert await client.zcard(Keys(settings.namespace).queue) == 0


async def test_subscribe_prints_what_the_stream_holds(
    settings: Settings, feed_server: FeedServer, worker: None, client: aioredis.Redis
) -> None:
    from tests.conftest import INGEST, env_for

    keys = Keys(settings.namespace)
    url = feed_server.url("data/seed-yonhap.xml")
    proc = await asyncio.create_subprocess_exec(
        *INGEST, "subscribe", "--feed", feed_id_of(url), env=env_for(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"subscribed to" in line
        code, out, err = await run_cli(settings, "enqueue", "--wait", url)
        assert code == 0, err
        printed = await asyncio.wait_for(proc.stdout.readline(), 10)
    finally:
        proc.terminate()
        await proc.wait()
    [(_, fields)] = await client.xrange(keys.items_stream)
    assert printed.rstrip(b"\n") == decode_item(fields[b"item"])
    record = orjson.loads(printed)
    assert record["authors"] == ["Yonhap"]
    assert record["published_at"] == "2020-01-16T12:21:00Z"


async def test_content_changing_on_every_fetch_stops_after_max_versions(
    settings: Settings, feed_server: FeedServer, client: aioredis.Redis
) -> None:
    from ingest.deliver.publish import Deliverer
    from ingest.models import FeedSpec, Fetched
    from workers.pipeline import process_document

    keys = Keys(settings.namespace)
    deliverer = Deliverer(client, keys, settings.stream_maxlen, 3600, max_versions=2)
    spec = FeedSpec("clockfeed", "http://ex.example/clock.xml", tags=("news", "asia"))
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.tag_channel("asia"))
    results = []
    for minute in range(4):
        body = _feed([("clock", f"The time is 10:0{minute}.")])
        fetched = Fetched(spec.url, spec.url, 200, {}, body, f"2026-01-01T10:0{minute}:00Z")
        results.append((await process_document(deliverer, spec, fetched)).result)
    assert [(r.new, r.updated) for r in results] == [(1, 0), (0, 1), (0, 0), (0, 0)]
    assert [r["version"] for r in await stream_records(client, keys)] == [1, 2]
    assert (await client.hgetall(keys.stats))[b"items_version_capped"] == b"2"
    assert len(await collect_messages(pubsub, 2, timeout=2)) == 2  # tag channel got both
    await pubsub.aclose()


async def test_unchanged_entries_keep_their_retention_in_the_delivery_call(
    settings: Settings, client: aioredis.Redis
) -> None:
    """A document with one new entry beside unchanged ones: the new one is delivered and the
    retention clock of the others restarts (both in the delivery's one script call)."""
    from ingest.deliver.publish import Deliverer
    from ingest.models import FeedSpec, Fetched
    from workers.clusters.index import ClusterIndex
    from workers.pipeline import process_document

    keys = Keys(settings.namespace)
    deliverer = Deliverer(client, keys, settings.stream_maxlen, 3600)
    clusters = ClusterIndex(client, keys, 0.5, 3600)
    spec = FeedSpec("retention", "http://ex.example/r.xml")
    old = [("a", "Story a."), ("b", "Story b.")]
    first = Fetched(spec.url, spec.url, 200, {}, _feed(old), "2026-01-01T10:00:00Z")
    await process_document(deliverer, spec, first, clusters)
    from ingest.deliver.state import day_of, parse_state

    seen = keys.item_states(spec.feed_id)
    fields = [f for f in await client.hkeys(seen) if len(f) == 16]
    assert len(fields) == 2
    long_ago = (day_of(time.time()) - 5).to_bytes(2, "big")
    for field in fields:  # as if last seen five days ago, and the hash about to expire
        await client.hset(seen, field, long_ago + (await client.hget(seen, field))[2:])
    await client.expire(seen, 100)
    second = Fetched(spec.url, spec.url, 200, {}, _feed([("c", "Story c."), *old]), "2026-01-01T10:05:00Z")
    result = (await process_document(deliverer, spec, second, clusters)).result
    assert (result.new, result.unchanged) == (1, 2)
    assert await client.ttl(seen) > 3000
    for field in fields:
        assert parse_state(await client.hget(seen, field)).seen_day == day_of(time.time())
    delivered = await stream_records(client, keys)
    assert [r["guid"] for r in delivered] == ["a", "b", "c"]
