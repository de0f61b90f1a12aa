"""The members of a cluster, as the store lists them (issue #14): the copy seen first
(its id is the cluster id) and its outlet, then the outlets that carried the story
since, in the order they were first stored, on real SQLite and PostgreSQL and
through `ingest items --cluster`."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.settings import Settings
from ingest.store import open_sink
from ingest.store.base import ItemQuery, Sink
from ingest.store.consume import SinkConsumer
from ingest.store.sqlite import _MIGRATIONS
from tests.records import fill_stream, record

FIRST = "item00001"


def member(i: int, *, feed: str, fetched: str, published: str, version: int = 1,
           cluster: str = FIRST) -> dict[str, Any]:
    r = record(i, feed=feed, version=version, published=published, cluster=cluster)
    r["fetched_at"] = fetched
    return r


# The wire story first seen from Yonhap; copies from two other feeds; one copy is
# corrected later (version 2, fetched last); an unrelated item beside them.
STORY = [
    member(1, feed="yonhap", fetched="2026-11-30T01:00:00Z", published="2026-11-30T00:58:00Z"),
    member(2, feed="news1", fetched="2026-11-30T01:05:00Z", published="2026-11-30T01:04:00Z"),
    member(3, feed="kbs", fetched="2026-11-30T01:09:00Z", published="2026-11-30T00:30:00Z"),
    member(4, feed="kbs", fetched="2026-11-30T01:02:00Z", published="2026-11-30T01:01:00Z",
           cluster="item00004"),
]
CORRECTION = member(2, feed="news1", fetched="2026-11-30T03:00:00Z",
                    published="2026-11-30T01:04:00Z", version=2)


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


async def test_members_are_listed_first_seen_first_and_a_correction_keeps_its_place(
    sink: Sink,
) -> None:
    await sink.upsert(STORY)
    await sink.upsert([CORRECTION])
    members = await sink.query(ItemQuery(cluster_id=FIRST, order="first_seen"))
    assert _ids(members) == ["item00001", "item00002", "item00003"]
    assert [r["feed_id"] for r in members] == ["yonhap", "news1", "kbs"]
    assert members[1]["version"] == 2  # the record is the newest version
    # Newest first (the default) orders by publication time instead.
    assert _ids(await sink.query(ItemQuery(cluster_id=FIRST))) == [
        "item00002", "item00001", "item00003"]
    # Without a cluster, first_seen is plain first-stored order.
    assert _ids(await sink.query(ItemQuery(order="first_seen"))) == [
        "item00001", "item00004", "item00002", "item00003"]


async def test_the_first_copy_leads_its_cluster_even_when_fetched_after_a_copy(
    sink: Sink,
) -> None:
    # Two workers: the copy's fetch finished first, but the index saw the first copy first.
    early_copy = member(5, feed="news1", fetched="2026-11-30T00:59:00Z",
                        published="2026-11-30T00:59:00Z")
    await sink.upsert([*STORY, early_copy])
    members = await sink.query(ItemQuery(cluster_id=FIRST, order="first_seen"))
    assert _ids(members) == ["item00001", "item00005", "item00002", "item00003"]


async def test_a_database_from_before_first_seen_is_migrated_at_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = open_sink(f"sqlite:///{path}")
    await old.open()
    await old.close()
    with sqlite3.connect(path) as conn:  # back to the schema #5 shipped, with two items
        conn.executescript("""
            DROP INDEX items_cluster_first_seen;
            ALTER TABLE items DROP COLUMN first_seen_at;
            UPDATE schema_version SET version = 2;
        """)
        for r in STORY[:2]:
            conn.execute(
                "INSERT INTO items (id, version, feed_id, url, title, published_at, fetched_at,"
                " language, cluster_id, content_hash, record) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (r["id"], 1, r["feed_id"], r["url"], r["title"], r["published_at"],
                 r["fetched_at"], r["language"], r["cluster_id"], r["content_hash"],
                 orjson.dumps(r).decode()))
    sink = open_sink(f"sqlite:///{path}")
    await sink.upsert([STORY[2]])
    members = await sink.query(ItemQuery(cluster_id=FIRST, order="first_seen"))
    assert _ids(members) == ["item00001", "item00002", "item00003"]
    await sink.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(_MIGRATIONS),)]
        assert conn.execute("SELECT first_seen_at FROM items WHERE id = 'item00001'"
                            ).fetchall() == [("2026-11-30T01:00:00Z",)]



async def test_ingest_items_cluster_shows_the_first_outlet_and_those_since(
    settings: Settings, client: aioredis.Redis, tmp_path: Path
) -> None:
    from tests.helpers import run_cli

    storage_url = f"sqlite:///{tmp_path / 'items.db'}"
    keys = Keys(settings.namespace)
    await fill_stream(client, keys, [*STORY, CORRECTION])
    sink = open_sink(storage_url)
    consumer = SinkConsumer(client, keys, sink, group="storage", consumer="c", batch_size=1,
                            block_ms=10, claim_idle_ms=60_000)
    await consumer.ensure_group()
    assert await consumer.step(10) == 1  # one record per batch: stored in stream order
    for _ in range(4):
        await consumer.step(10)
    await sink.close()
    settings = dataclasses.replace(settings, storage_url=storage_url)

    code, out, err = await run_cli(settings, "items", "--cluster", FIRST)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"cluster {FIRST}: 3 items from 3 feeds, first seen first"
    assert [line.split()[:2] for line in lines[1:]] == [["1", "first"], ["2", "copy"], ["3", "copy"]]
    assert "YONHAP" in lines[1] and "NEWS1" in lines[2] and "KBS" in lines[3]
    assert "Story 2 v2" in lines[2]
    code, out, err = await run_cli(settings, "items", "--cluster", FIRST, "--json")
    assert code == 0, err
    assert [orjson.loads(line)["id"] for line in out.splitlines()] == [
        "item00001", "item00002", "item00003"]
    # Only a copy selected: the listing says the first copy is not among them.
    code, out, err = await run_cli(settings, "items", "--cluster", FIRST, "--feed", "kbs")
    assert code == 0, err
    assert "is not in storage or not selected" in out.splitlines()[1]
