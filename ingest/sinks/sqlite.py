"""SQLite sink: the zero-install default. One row per item id, the record as JSON.

sqlite3 is synchronous; calls run in a worker thread (asyncio.to_thread) on
one connection, serialized by a lock. WAL mode lets `ingest items` read while
the sink writes. A batch is one transaction: upsert all, commit, and only
then does the caller acknowledge the stream entries.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from ingest.errors import StorageError
from ingest.sinks.base import ItemQuery

__all__ = ["SQLiteSink"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id           TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    feed_id      TEXT NOT NULL,
    url          TEXT,
    title        TEXT NOT NULL,
    published_at TEXT,
    fetched_at   TEXT NOT NULL,
    language     TEXT,
    cluster_id   TEXT,
    content_hash TEXT NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_feed_published ON items (feed_id, published_at);
CREATE INDEX IF NOT EXISTS items_published ON items (published_at);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
"""

# A replayed or reordered older version never overwrites a newer one.
_UPSERT = """
INSERT INTO items (id, version, feed_id, url, title, published_at, fetched_at, language,
                   cluster_id, content_hash, record)
VALUES (:id, :version, :feed_id, :url, :title, :published_at, :fetched_at, :language,
        :cluster_id, :content_hash, :record)
ON CONFLICT (id) DO UPDATE SET
    version = excluded.version, feed_id = excluded.feed_id, url = excluded.url,
    title = excluded.title, published_at = excluded.published_at,
    fetched_at = excluded.fetched_at, language = excluded.language,
    cluster_id = excluded.cluster_id, content_hash = excluded.content_hash,
    record = excluded.record
WHERE excluded.version >= items.version
"""


class SQLiteSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> SQLiteSink:
        parts = urlsplit(url)
        path = unquote(parts.path)
        if parts.netloc:  # sqlite://relative/path is a common slip for sqlite:///
            path = parts.netloc + path
        if not path:
            raise StorageError(f"storage URL {url!r} names no file")
        return cls(Path(path))

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        return conn

    async def _call(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            try:
                return await asyncio.to_thread(fn, *args)
            except sqlite3.Error as e:
                raise StorageError(f"sqlite {self.path}: {e}") from e

    async def open(self) -> None:
        if self._conn is None:
            self._conn = await self._call(self._connect)

    def _upsert_sync(self, rows: list[dict[str, Any]]) -> int:
        assert self._conn is not None
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_UPSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(rows)

    async def upsert(self, records: Sequence[dict[str, Any]]) -> int:
        if not records:
            return 0
        await self.open()
        rows = [
            {
                "id": r["id"], "version": int(r["version"]), "feed_id": r["feed_id"],
                "url": r.get("url"), "title": r.get("title") or "",
                "published_at": r.get("published_at"), "fetched_at": r["fetched_at"],
                "language": r.get("language"), "cluster_id": r.get("cluster_id"),
                "content_hash": r["content_hash"], "record": orjson.dumps(r).decode(),
            }
            for r in records
        ]
        result: int = await self._call(self._upsert_sync, rows)
        return result

    def _query_sync(self, query: ItemQuery) -> list[dict[str, Any]]:
        assert self._conn is not None
        sql = "SELECT record FROM items"
        params: list[Any] = []
        if query.feed_id:
            sql += " WHERE feed_id = ?"
            params.append(query.feed_id)
        sql += " ORDER BY COALESCE(published_at, fetched_at) DESC, id LIMIT ?"
        params.append(query.limit)
        return [orjson.loads(row[0]) for row in self._conn.execute(sql, params)]

    async def query(self, query: ItemQuery) -> list[dict[str, Any]]:
        await self.open()
        result: list[dict[str, Any]] = await self._call(self._query_sync, query)
        return result

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)
