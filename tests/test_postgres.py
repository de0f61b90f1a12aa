"""PostgreSQL specifics on the real server: schema, migrations, JSONB lists, indexes."""

from __future__ import annotations

import asyncio

import asyncpg

from ingest.store.postgres import PostgresSink, split_schema
from tests.pgfixture import postgres_url  # noqa: F401 - fixture
from tests.records import record


async def test_sinks_starting_together_create_and_migrate_the_schema_once(
    postgres_url: str,  # noqa: F811 - the imported fixture
) -> None:
    sinks = [PostgresSink.from_url(postgres_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in sinks))
    await sinks[0].upsert([record(1, tags=["asia"])])
    for s in sinks:
        await s.close()

    dsn, schema = split_schema(postgres_url)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval(f'SELECT array_agg(version) FROM "{schema}".schema_version') == [2]
        types = dict(await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'items'", schema))
        assert {types[c] for c in ("authors", "categories", "enclosures", "tags")} == {"jsonb"}
        assert types["published_at"] == "timestamp with time zone"
        assert types["search"] == "tsvector"
        assert types["first_seen_at"] == "timestamp with time zone"  # #14: cluster members
        indexes = {row[0] for row in await conn.fetch(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'items'", schema)}
        joined = " ".join(indexes)
        assert "(feed_id, published_at DESC)" in joined
        assert "COALESCE(published_at, fetched_at) DESC" in joined
        assert "gin (search)" in joined
        assert "(cluster_id, first_seen_at)" in joined
        row = await conn.fetchrow(f'SELECT tags, authors, record::text AS raw FROM "{schema}".items')
        assert row["tags"] == '["asia"]' and row["authors"] == '["Desk"]'
        assert row["raw"].startswith('{"id":"item00001","version":1,')  # the bytes, key order kept
        assert await conn.fetchval(
            f"SELECT count(*) FROM \"{schema}\".items WHERE tags @> '[\"asia\"]'") == 1
    finally:
        await conn.close()


async def test_an_unreachable_server_is_a_storage_error_naming_it() -> None:
    import pytest

    from ingest.errors import StorageError

    sink = PostgresSink.from_url("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(StorageError, match="postgresql"):
        await sink.open()


async def test_a_schema_a_newer_ingest_migrated_is_refused(
    postgres_url: str,  # noqa: F811 - the imported fixture
) -> None:
    import pytest

    from ingest.errors import StorageError
    from ingest.store.postgres import _MIGRATIONS

    sink = PostgresSink.from_url(postgres_url)
    await sink.open()
    await sink.close()
    dsn, schema = split_schema(postgres_url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'UPDATE "{schema}".schema_version SET version = $1', len(_MIGRATIONS) + 1)
    finally:
        await conn.close()
    older = PostgresSink.from_url(postgres_url)
    with pytest.raises(StorageError, match="newer than this ingest knows"):
        await older.open()
    await older.close()
