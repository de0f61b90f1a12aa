"""Storage sinks on real SQLite and real PostgreSQL: upserts, migrations, queries, search,
and the consumer group around them (dead letters, shared work)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.settings import Settings
from ingest.store import open_sink
from ingest.store.base import ItemQuery, Sink, parse_time
from ingest.store.consume import SinkConsumer, decode_record, newest_per_item
from ingest.store.sqlite import _MIGRATIONS
from tests.records import fill_stream, record


def _ids(records: list[dict[str, object]]) -> list[object]:
    return [r["id"] for r in records]


async def test_upsert_is_idempotent_and_never_goes_back_a_version(sink: Sink) -> None:
    await sink.upsert([record(1), record(2)])
    await sink.upsert([record(1, version=3), record(2)])
    await sink.upsert([record(1, version=2)])  # a replayed older version
    rows = {r["id"]: r for r in await sink.query(ItemQuery(limit=10))}
    assert set(rows) == {"item00001", "item00002"}
    assert rows["item00001"]["version"] == 3
    assert rows["item00001"]["title"] == "Story 1 v3"
    assert rows["item00002"]["authors"] == ["Desk"]


async def test_schema_is_created_once_and_reopening_keeps_the_data(storage_url: str) -> None:
    first = open_sink(storage_url)
    await first.upsert([record(1)])
    await first.close()
    again = open_sink(storage_url)  # migrations see they are applied
    await again.open()
    assert _ids(await again.query(ItemQuery())) == ["item00001"]
    await again.close()


async def test_queries_filter_by_feed_time_language_and_cluster(sink: Sink) -> None:
    await sink.upsert([
        record(1, feed="a", published="2025-01-01T10:00:00Z", language="de-DE", cluster="c1"),
        record(2, feed="a", published="2025-01-02T10:00:00Z", language="en", cluster="c1"),
        record(3, feed="b", published="2025-01-03T10:00:00Z", language="de", cluster="c3"),
        record(4, feed="b", published="2025-01-04T10:00:00Z", language=None, cluster="c4"),
    ])
    assert _ids(await sink.query(ItemQuery())) == ["item00004", "item00003", "item00002", "item00001"]
    assert _ids(await sink.query(ItemQuery(feed_id="a"))) == ["item00002", "item00001"]
    assert _ids(await sink.query(ItemQuery(since="2025-01-02T10:00:00Z", until="2025-01-04T00:00:00Z"))) == [
        "item00003", "item00002"]
    assert _ids(await sink.query(ItemQuery(language="de"))) == ["item00003", "item00001"]
    assert _ids(await sink.query(ItemQuery(cluster_id="c1", feed_id="a", limit=1))) == ["item00002"]


async def test_pages_continue_after_a_keyset_or_an_offset(sink: Sink) -> None:
    same = "2025-01-02T10:00:00Z"
    await sink.upsert([record(1, published="2025-01-01T10:00:00Z"), record(2, published=same),
                       record(3, published=same), record(4, published="2025-01-03T10:00:00Z")])
    assert _ids(await sink.query(ItemQuery(after=(same, "item00002")))) == ["item00003", "item00001"]
    assert _ids(await sink.query(ItemQuery(after=("2025-01-03T10:00:00Z", "item00004"), limit=2))) == [
        "item00002", "item00003"]
    assert _ids(await sink.query(ItemQuery(offset=3))) == ["item00001"]


async def test_search_uses_the_databases_full_text_index(sink: Sink) -> None:
    await sink.upsert([
        record(1, text="Defense talks in Seoul"),
        record(2, text="Football results"),
        record(3, text="Seoul weather"),
    ])
    await sink.upsert([record(2, version=2, text="Football: Seoul wins")])
    found = await sink.query(ItemQuery(text="seoul"))
    assert sorted(_ids(found)) == ["item00001", "item00002", "item00003"]
    assert _ids(await sink.query(ItemQuery(text="Seoul talks"))) == ["item00001"]
    assert _ids(await sink.query(ItemQuery(text="results"))) == []  # the old version left the index
    assert _ids(await sink.query(ItemQuery(text='"; DROP TABLE items --'))) == []
    assert _ids(await sink.query(ItemQuery(text="seoul", feed_id="nope"))) == []


def test_times_on_the_command_line_become_utc() -> None:
    assert parse_time("2025-01-06") == "2025-01-06T00:00:00Z"
    assert parse_time("2025-01-06T10:00+09:00") == "2025-01-06T01:00:00Z"
    assert parse_time("2025-01-06T10:00:00Z") == "2025-01-06T10:00:00Z"
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_record_checks_and_newest_version_per_batch() -> None:
    with pytest.raises(ValueError, match="missing content_hash"):
        decode_record(b'{"id":"x","version":1,"feed_id":"f","fetched_at":"t"}')
    with pytest.raises(ValueError, match="unreadable"):
        decode_record(b"{not json")
    batch = [record(1, version=2), record(1, version=1), record(2)]
    assert [(r["id"], r["version"]) for r in newest_per_item(batch)] == [
        ("item00001", 2), ("item00002", 1)]


async def test_a_record_the_database_refuses_is_dead_lettered_and_the_rest_stored(
    settings: Settings, storage_url: str, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    bad = record(2)
    # SQLite cannot bind a JSON object as a title; PostgreSQL cannot read the date.
    bad["title"] = {"not": "text"}
    bad["published_at"] = "the day before yesterday"
    await fill_stream(client, keys, [record(1), bad, record(3)])
    sink = open_sink(storage_url)
    consumer = SinkConsumer(client, keys, sink, group="storage", consumer="c1", batch_size=10,
                            block_ms=10, claim_idle_ms=60_000, max_attempts=3)
    await consumer.ensure_group()
    for _ in range(10):  # bounded; the bad entry is re-read until its third delivery
        await consumer.step(10)
    rows = await sink.query(ItemQuery())
    await sink.close()
    assert sorted(_ids(rows)) == ["item00001", "item00003"]
    [(_, dead)] = await client.xrange(keys.dead_stream)
    assert dead[b"kind"] == b"sink" and dead[b"group"] == b"storage"
    assert dead[b"item_id"] == b"item00002" and dead[b"deliveries"] == b"3"
    assert dead[b"error"]
    assert (await client.xpending(keys.items_stream, "storage"))["pending"] == 0
    assert (await client.hgetall(keys.stats))[b"sink_failures"] == b"1"


async def test_two_sinks_in_one_group_share_the_work_and_write_each_item_once(
    settings: Settings, storage_url: str, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    records = [record(i) for i in range(600)]
    await fill_stream(client, keys, records)
    sinks = [open_sink(storage_url), open_sink(storage_url)]
    consumers = [
        SinkConsumer(client, keys, s, group="storage", consumer=f"c{n}", batch_size=25,
                     block_ms=20, claim_idle_ms=60_000)
        for n, s in enumerate(sinks)
    ]
    await consumers[0].ensure_group()

    async def drain(c: SinkConsumer) -> None:
        idle = 0
        for _ in range(200):  # bounded
            idle = idle + 1 if await c.step(20) == 0 else 0
            if idle >= 3:
                return

    await asyncio.gather(*(drain(c) for c in consumers))
    rows = await sinks[0].query(ItemQuery(limit=1000))
    for s in sinks:
        await s.close()
    assert all(c.stored > 0 for c in consumers)  # both worked
    assert sum(c.stored for c in consumers) == 600  # and no item was written twice
    assert sorted(_ids(rows)) == sorted(r["id"] for r in records)
    assert (await client.xpending(keys.items_stream, "storage"))["pending"] == 0


def test_storage_url_accepts_postgresql_and_names_the_key_otherwise() -> None:
    from ingest.errors import SettingsError
    from ingest.settings import load_settings
    from ingest.store.postgres import split_schema

    s = load_settings(None, {"INGEST_STORAGE_URL": "postgresql://u@127.0.0.1:5432/db?schema=news"})
    assert s.effective_storage_url.startswith("postgresql://")
    assert split_schema(s.storage_url) == ("postgresql://u@127.0.0.1:5432/db", "news")
    assert split_schema("postgres://u@h/db?sslmode=disable") == (
        "postgresql://u@h/db?sslmode=disable", "public")
    with pytest.raises(SettingsError, match="storage_url"):
        load_settings(None, {"INGEST_STORAGE_URL": "mysql://u@h/db"})
    with pytest.raises(Exception, match="schema"):
        split_schema("postgresql://u@h/db?schema=a;drop")


async def test_items_and_search_commands_filter_what_the_sink_stored(
    settings: Settings, storage_url: str, client: aioredis.Redis
) -> None:
    from tests.helpers import run_cli

    keys = Keys(settings.namespace)
    await fill_stream(client, keys, [
        record(1, feed="a", published="2025-01-01T10:00:00Z", language="de-DE", text="Wahl in Berlin"),
        record(2, feed="a", published="2025-01-02T10:00:00Z", language="en", text="Berlin election"),
        record(3, feed="b", published="2025-01-03T10:00:00Z", language="en", text="Tokyo markets"),
    ])
    sink = open_sink(storage_url)
    consumer = SinkConsumer(client, keys, sink, group="storage", consumer="c", batch_size=10,
                            block_ms=10, claim_idle_ms=60_000)
    await consumer.ensure_group()
    assert await consumer.step(10) == 3
    await sink.close()
    settings = dataclasses.replace(settings, storage_url=storage_url)

    async def ids(*args: str) -> list[str]:
        code, out, err = await run_cli(settings, *args, "--json")
        assert code == 0, err
        return [orjson.loads(line)["id"] for line in out.splitlines()]

    assert await ids("items") == ["item00003", "item00002", "item00001"]
    assert await ids("items", "--feed", "a", "--lang", "de") == ["item00001"]
    assert await ids("items", "--since", "2025-01-02", "--until", "2025-01-03T10:00:00Z") == [
        "item00002"]
    assert await ids("items", "--cluster", "item00003") == ["item00003"]
    assert sorted(await ids("search", "berlin")) == ["item00001", "item00002"]
    assert await ids("search", "berlin", "--lang", "en") == ["item00002"]
    code, out, _ = await run_cli(settings, "search", "Berlin")
    assert code == 0 and "Story 1 v1" in out and "Story 3" not in out
    code, _, err = await run_cli(settings, "items", "--since", "last week")
    assert code == 2 and "ISO 8601" in err


async def test_a_database_from_before_full_text_search_is_migrated_at_open(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the schema #2 shipped, with one stored item
        conn.executescript("""
            CREATE TABLE items (id TEXT PRIMARY KEY, version INTEGER NOT NULL, feed_id TEXT NOT NULL,
                url TEXT, title TEXT NOT NULL, published_at TEXT, fetched_at TEXT NOT NULL,
                language TEXT, cluster_id TEXT, content_hash TEXT NOT NULL, record TEXT NOT NULL);
            CREATE TABLE schema_version (version INTEGER NOT NULL);
        """)
        r = record(1, text="Old news from Busan")
        conn.execute("INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     (r["id"], 1, r["feed_id"], r["url"], r["title"], r["published_at"],
                      r["fetched_at"], r["language"], r["cluster_id"], r["content_hash"],
                      orjson.dumps(r).decode()))
    sink = open_sink(f"sqlite:///{path}")
    assert _ids(await sink.query(ItemQuery(text="busan"))) == ["item00001"]
    await sink.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(_MIGRATIONS),)]


async def test_sqlite_search_sees_rows_another_sink_wrote_and_not_yet_indexed(tmp_path: Path) -> None:
    """The full-text index is fed in bulk (ingest/store/sqlite.py): rows another sink
    wrote a moment ago, not yet indexed, are indexed by the search that needs them."""
    url = f"sqlite:///{tmp_path / 'items.db'}"
    writer, reader = open_sink(url), open_sink(url)
    await writer.upsert([record(1, text="Typhoon nears Okinawa"), record(2, text="Markets calm")])
    await writer.upsert([record(1, version=2, text="Typhoon reaches Kyushu")])
    assert _ids(await reader.query(ItemQuery(text="typhoon"))) == ["item00001"]
    assert _ids(await reader.query(ItemQuery(text="okinawa"))) == []  # the old version is gone
    assert _ids(await reader.query(ItemQuery(text="kyushu"))) == ["item00001"]
    await writer.upsert([record(3, text="Typhoon leaves")])
    await writer.close()  # closing feeds the index with what this sink wrote
    assert sorted(_ids(await reader.query(ItemQuery(text="typhoon")))) == ["item00001", "item00003"]
    await reader.close()


async def test_sqlite_search_finds_summary_words_and_a_summary_that_repeats_the_body(
        tmp_path: Path) -> None:
    sink = open_sink(f"sqlite:///{tmp_path / 'items.db'}")
    repeated = record(1, text="First paragraph\n\nSecond paragraph")
    repeated["summary"] = "First paragraph Second paragraph"  # the body again, joined by spaces
    teaser = record(2, text="The whole story of the harbour")
    teaser["summary"] = "Lighthouse keepers remember"  # words only the summary has
    await sink.upsert([repeated, teaser])
    assert _ids(await sink.query(ItemQuery(text="second paragraph"))) == ["item00001"]
    assert _ids(await sink.query(ItemQuery(text="lighthouse"))) == ["item00002"]
    assert _ids(await sink.query(ItemQuery(text="harbour"))) == ["item00002"]
    await sink.close()


async def test_sqlite_index_forgets_the_words_of_every_older_version(tmp_path: Path) -> None:
    """The contentless index (migration 5) forgets a row's words only when told them: an
    update tells it those of the version it holds, whichever way that was indexed (from
    this sink's values, from the stored record, a NUL in the text) or not yet indexed."""
    url = f"sqlite:///{tmp_path / 'items.db'}"
    writer, other = open_sink(url), open_sink(url)
    nul = record(3, text="Glacier\0melts")  # json_extract ends the text at the NUL
    await writer.upsert([record(1, text="Avalanche warning"), record(2, text="Harbour strike"), nul])
    await other.upsert([record(4, text="Volcano ash")])
    assert _ids(await writer.query(ItemQuery(text="avalanche"))) == ["item00001"]  # all indexed now
    assert _ids(await writer.query(ItemQuery(text="glacier"))) == ["item00003"]
    assert _ids(await writer.query(ItemQuery(text="melts"))) == []  # as before: cut at the NUL
    await writer.upsert([record(1, version=2, text="Snowfall"), record(3, version=2, text="Lake")])
    await writer.upsert([record(4, version=2, text="Lava flow")])  # indexed from the other sink's row
    await writer.upsert([record(1, version=3, text="Sunshine")])  # version 2 was never indexed
    await other.upsert([record(2, version=2, text="Harbour reopens")])
    for gone in ("avalanche", "snowfall", "glacier", "volcano", "strike"):
        assert _ids(await writer.query(ItemQuery(text=gone))) == [], gone
    for word, item in (("sunshine", "item00001"), ("lake", "item00003"), ("lava", "item00004"),
                       ("reopens", "item00002"), ("harbour", "item00002"), ("story", None)):
        found = sorted(_ids(await other.query(ItemQuery(text=word))))
        assert found == ([item] if item else ["item00001", "item00002", "item00003", "item00004"]), word
    await writer.close()
    await other.close()


def test_sqlite_index_values_from_a_record_are_what_sqlite_reads_from_its_json() -> None:
    """What the index gets from the values a sink holds (fts_values) and from the stored
    JSON (_fts_columns) must agree, or the contentless index would be told to forget
    other words than it was given."""
    import sqlite3

    from ingest.store.sqlite import _fts_columns, _indexed, fts_values

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE items (title TEXT, record TEXT)")
    texts = [None, "", "One", "One\n\nTwo", "One\nTwo", "One\n\n\nTwo", "\n\n", "é 😀 \u2028 \x01\t\"\\"]
    checked = 0
    for text in texts:
        for summary in {*texts, (text or "").replace("\n\n", " ")}:
            for title in ("T", "", None, 7):
                r = {"title": title, "summary": summary, "content_text": text}
                values = fts_values(r)
                if values is None:
                    assert not isinstance(title, str | None)
                    continue
                conn.execute("DELETE FROM items")
                conn.execute("INSERT INTO items VALUES (?, ?)", (title or "", orjson.dumps(r).decode()))
                stored = conn.execute(f"SELECT {_fts_columns('')} FROM items").fetchone()
                assert conn.execute(f"SELECT {_indexed('?1', '?2', '?3')}", values).fetchone() == stored, r
                summary_kept = None if text is not None and text.replace("\n\n", " ") == summary else summary
                assert stored == (title or "", summary_kept, text)
                checked += 1
    assert checked > 100
    assert fts_values({"title": "T", "summary": None, "content_text": "a\0b"}) is None


async def test_a_database_with_the_full_text_index_of_migration_4_is_rebuilt(tmp_path: Path) -> None:
    """Migration 5 replaces the index that held its own copy of the text by a contentless
    one, indexing every stored row (pending ones too) once."""
    import sqlite3

    from ingest.store.sqlite import SQLiteSink, _migrate

    path = tmp_path / "items.db"
    old = SQLiteSink(path)
    await old.upsert([record(1, text="Comet sighted"), record(2, text="Eclipse tonight")])
    await old.close()
    with sqlite3.connect(path, isolation_level=None) as conn:  # back to migration 4's index
        conn.execute("DROP TRIGGER fts_pending_update")
        conn.execute("DROP TABLE items_fts")
        conn.execute("CREATE VIRTUAL TABLE items_fts USING fts5(title, summary, content_text)")
        conn.execute("INSERT INTO items_fts (rowid, title, content_text) "
                     "SELECT rowid, title, json_extract(record, '$.content_text') FROM items")
        conn.execute("INSERT INTO fts_pending VALUES ((SELECT rowid FROM items WHERE id = 'item00002'), 1)")
        conn.execute("UPDATE items SET record = json_set(record, '$.content_text', 'Eclipse missed') "
                     "WHERE id = 'item00002'")
        conn.execute("UPDATE schema_version SET version = 4")
    sink = open_sink(f"sqlite:///{path}")
    assert _ids(await sink.query(ItemQuery(text="comet"))) == ["item00001"]
    assert _ids(await sink.query(ItemQuery(text="missed"))) == ["item00002"]
    assert _ids(await sink.query(ItemQuery(text="tonight"))) == []
    await sink.close()
    with sqlite3.connect(path) as conn:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'items_fts'").fetchone()[0]
        assert "content = ''" in sql
        assert conn.execute("SELECT v FROM items_fts_config WHERE k = 'automerge'").fetchone() == (16,)
        _migrate(conn)  # applied once: nothing to do again


async def test_a_database_a_newer_ingest_migrated_is_refused_untouched(tmp_path: Path) -> None:
    """After a rollback, the older code must not write a schema it does not know (a
    trigger-fed full-text index would keep stale words): a clear storage error, and
    neither the rows nor the schema version changed."""
    import sqlite3

    from ingest.errors import StorageError

    path = tmp_path / "newer.db"
    sink = open_sink(f"sqlite:///{path}")
    await sink.upsert([record(1, text="Kept as it was")])
    await sink.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (len(_MIGRATIONS) + 1,))
    older = open_sink(f"sqlite:///{path}")
    with pytest.raises(StorageError, match=rf"version {len(_MIGRATIONS) + 1}, newer than this ingest knows"):
        await older.open()
    with pytest.raises(StorageError, match="newer than this ingest knows"):
        await older.upsert([record(2)])
    await older.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(_MIGRATIONS) + 1,)]
        assert conn.execute("SELECT id FROM items").fetchall() == [("item00001",)]
