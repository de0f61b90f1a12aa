"""PostgreSQL sink (asyncpg): batched idempotent upserts, schema migrated at start.

URL: `postgresql://USER[:PASSWORD]@HOST:PORT/DB[?schema=NAME]`. `schema`
(default `public`) is ours, not libpq's: it is created if missing and set as
the connection's search_path, so several deployments (or test runs) can
share one database.

Columns hold what queries filter on (feed, published time, language,
cluster), lists are JSONB (`authors`, `categories`, `enclosures`, `tags`),
`record` keeps the exact JSON the stream carried (type json keeps the bytes
and key order; jsonb would reorder them), and `search` is a generated
tsvector (`simple` configuration: feeds come in every language) behind a GIN
index. A batch is one transaction of a pipelined executemany; the upsert's
WHERE keeps a replayed older version from overwriting a newer one.

Migrations run under a transaction-scoped advisory lock, so several sinks
starting at once migrate once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from ingest.errors import StorageError
from ingest.store.base import ItemQuery, RecordRejected, check_schema_version

__all__ = ["PostgresSink", "split_schema"]

_MIGRATIONS: tuple[str, ...] = (
    # 1 (#5): items, lists as JSONB, full-text vector, indexes for feed and time.
    """
    CREATE TABLE IF NOT EXISTS items (
        id           text PRIMARY KEY,
        version      integer NOT NULL,
        feed_id      text NOT NULL,
        url          text,
        title        text NOT NULL,
        published_at timestamptz,
        fetched_at   timestamptz NOT NULL,
        language     text,
        cluster_id   text,
        content_hash text NOT NULL,
        authors      jsonb NOT NULL DEFAULT '[]',
        categories   jsonb NOT NULL DEFAULT '[]',
        enclosures   jsonb NOT NULL DEFAULT '[]',
        tags         jsonb NOT NULL DEFAULT '[]',
        record       json NOT NULL,
        search       tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', coalesce(title, '')), 'A') ||
            setweight(to_tsvector('simple', coalesce(record->>'summary', '')), 'B') ||
            setweight(to_tsvector('simple', coalesce(record->>'content_text', '')), 'C')
        ) STORED
    );
    CREATE INDEX IF NOT EXISTS items_feed_published ON items (feed_id, published_at DESC);
    CREATE INDEX IF NOT EXISTS items_published ON items ((coalesce(published_at, fetched_at)) DESC);
    CREATE INDEX IF NOT EXISTS items_cluster ON items (cluster_id);
    CREATE INDEX IF NOT EXISTS items_search ON items USING gin (search);
    """,
    # 2 (#14): when each item was first stored (the fetch time of its first version),
    # kept by later versions: a cluster's members in the order they were seen.
    """
    ALTER TABLE items ADD COLUMN IF NOT EXISTS first_seen_at timestamptz;
    UPDATE items SET first_seen_at = fetched_at WHERE first_seen_at IS NULL;
    CREATE INDEX IF NOT EXISTS items_cluster_first_seen ON items (cluster_id, first_seen_at);
    """,
)

_UPSERT = """
INSERT INTO items (id, version, feed_id, url, title, published_at, fetched_at, language,
                   cluster_id, content_hash, authors, categories, enclosures, tags, record,
                   first_seen_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13::jsonb,
        $14::jsonb, $15::json, $7)
ON CONFLICT (id) DO UPDATE SET
    version = excluded.version, feed_id = excluded.feed_id, url = excluded.url,
    title = excluded.title, published_at = excluded.published_at,
    fetched_at = excluded.fetched_at, language = excluded.language,
    cluster_id = excluded.cluster_id, content_hash = excluded.content_hash,
    authors = excluded.authors, categories = excluded.categories,
    enclosures = excluded.enclosures, tags = excluded.tags, record = excluded.record
WHERE excluded.version >= items.version
"""


def split_schema(url: str) -> tuple[str, str]:
    """Pure: (URL without our `schema` parameter, schema name)."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in params if k == "schema"), "") or "public"
    if not schema.replace("_", "").isalnum():
        raise StorageError(f"storage URL: schema {schema!r} must be letters, digits and _")
    rest = urlencode([(k, v) for k, v in params if k != "schema"])
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _json(value: Any) -> str:
    return orjson.dumps(value if value is not None else []).decode()


def row_of(r: dict[str, Any]) -> tuple[Any, ...]:
    """Pure: the upsert's parameters for one record; ValueError/KeyError on bad data."""
    fetched = _time(r["fetched_at"])
    if fetched is None:
        raise ValueError("fetched_at is empty")
    return (
        r["id"], int(r["version"]), r["feed_id"], r.get("url"), r.get("title") or "",
        _time(r.get("published_at")), fetched, r.get("language"), r.get("cluster_id"),
        r["content_hash"], _json(r.get("authors")), _json(r.get("categories")),
        _json(r.get("enclosures")), _json(r.get("tags")), orjson.dumps(r).decode(),
    )


def _where(query: ItemQuery) -> tuple[str, list[Any]]:
    """Pure: SQL conditions with $n placeholders, and their parameters."""
    when = "coalesce(published_at, fetched_at)"
    conds: list[str] = []
    params: list[Any] = []

    def add(cond: str, *values: Any) -> None:
        for value in values:
            params.append(value)
            cond = cond.replace("?", f"${len(params)}", 1)
        conds.append(cond)

    if query.feed_id:
        add("feed_id = ?", query.feed_id)
    if query.since:
        add(f"{when} >= ?", _time(query.since))
    if query.until:
        add(f"{when} < ?", _time(query.until))
    if query.language:
        add("(language = ? OR language LIKE ? || '-%')", query.language, query.language)
    if query.cluster_id:
        add("cluster_id = ?", query.cluster_id)
    if query.text:
        add("search @@ plainto_tsquery('simple', ?)", query.text)
    elif query.after:
        after = _time(query.after[0])
        add(f"({when} < ? OR ({when} = ? AND id > ?))", after, after, query.after[1])
    return (" AND ".join(conds) or "true"), params


def _outage_errors() -> tuple[type[BaseException], ...]:
    """What asyncpg raises when the database, not the data, is the problem.

    InternalClientError included (#12): after pg_terminate_backend a pooled
    connection's protocol state can surface as it, and it escaped the sink as an
    unexpected crash instead of a counted, retried StorageError.
    """
    import asyncpg

    return (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


class PostgresSink:
    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self._pool: Any = None  # asyncpg.Pool

    @classmethod
    def from_url(cls, url: str) -> PostgresSink:
        dsn, schema = split_schema(url)
        return cls(dsn, schema)

    async def open(self) -> None:
        if self._pool is not None:
            return
        import asyncpg

        try:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                       f"ingest-migrate:{self.schema}")
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
                    await _migrate(conn)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=4, timeout=10,
                server_settings={"search_path": self.schema},
            )
        except _outage_errors() as e:
            raise StorageError(f"postgresql: {type(e).__name__}: {e}") from e

    async def upsert(self, records: Sequence[dict[str, Any]]) -> int:
        if not records:
            return 0
        import asyncpg

        try:
            rows = [row_of(r) for r in records]
        except (KeyError, TypeError, ValueError) as e:
            raise RecordRejected(f"postgresql: bad record: {e!r}") from e
        await self.open()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.executemany(_UPSERT, rows)
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
                asyncpg.exceptions.CharacterNotInRepertoireError,
                asyncpg.exceptions.UntranslatableCharacterError) as e:
            raise RecordRejected(f"postgresql: {type(e).__name__}: {e}") from e
        except _outage_errors() as e:
            raise StorageError(f"postgresql: {type(e).__name__}: {e}") from e
        return len(rows)

    async def query(self, query: ItemQuery) -> list[dict[str, Any]]:
        if query.text is not None and not query.text.split():
            return []
        await self.open()
        where, params = _where(query)
        order = "coalesce(published_at, fetched_at) DESC, id"
        if query.order == "first_seen":
            first = "id <> cluster_id, " if query.cluster_id else ""  # false sorts first
            order = f"{first}first_seen_at, id"
        if query.text:
            order = f"ts_rank(search, plainto_tsquery('simple', ${len(params)})) DESC, id"
        params += [query.limit, query.offset]
        sql = (f"SELECT record::text FROM items WHERE {where} ORDER BY {order} "
               f"LIMIT ${len(params) - 1} OFFSET ${len(params)}")
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(sql, *params)
        except _outage_errors() as e:
            raise StorageError(f"postgresql: {type(e).__name__}: {e}") from e
        return [orjson.loads(row[0]) for row in rows]

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


async def _migrate(conn: Any) -> None:
    """Apply the migrations not yet applied (caller holds the lock and the transaction)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
    current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
    check_schema_version(current, len(_MIGRATIONS), "postgresql")
    for number, script in enumerate(_MIGRATIONS, start=1):
        if number > current:
            await conn.execute(script)
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
