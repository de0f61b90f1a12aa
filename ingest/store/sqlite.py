"""SQLite sink: the zero-install default. One row per item id, the record as JSON.

sqlite3 is synchronous; calls run in a worker thread (asyncio.to_thread) on
one connection, serialized by a lock. WAL mode lets `ingest items` read while
the sink writes. A batch is one transaction: upsert all, commit, and only
then does the caller acknowledge the stream entries.

The full-text index is fed in bulk, not row by row: a stored row only notes
its rowid in `fts_pending` (a trigger), and the pending rows are indexed in
one statement once enough have gathered or a second has passed, and always
before a search, so a search sees every stored item. FTS5 indexing row by
row in small transactions cost ~110 µs a row (half the sink's CPU); in bulk
it costs about half that. A summary that is only the body's text again (a
feed with a description alone) is not indexed twice.

The index is contentless (migration 5): it holds the words, not a second copy
of the text (searches match and rank there and read the record from `items`);
that copy cost ~12 µs a row to write and a quarter of the database. Such an
index forgets a row's words only when told them again, so the update trigger
tells it those of the version it holds, computed from the old record by the
same rule it was indexed by.

The indexed values of a row this sink wrote are taken from the record it
still holds (`_fts_values`, kept only until the next indexing), not read back
and parsed out of the stored JSON with json_extract (~15 µs a row of the
farm's 7 KB records); a pending row this sink has no values for (another
sink's, one from before a restart, a value SQLite's JSON would read
otherwise) is indexed from the stored record. Both go through the same SQL
rule (`_indexed`), which the contentless index needs: what it is told to
forget must be what it was given. `fts_pending` stays the durable list of
what to index: the values in memory are a cache, never the record of what is
pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from ingest.errors import StorageError
from ingest.store.base import ItemQuery, RecordRejected, check_schema_version

__all__ = ["SQLiteSink"]


def _indexed(title: str, summary: str, text: str) -> str:
    """SQL: what the full-text index gets, from SQL expressions of the title and of the
    record's summary and content_text. The summary is left out when it is the body's
    paragraphs joined by spaces: the same words, which content_text already holds.
    One rule for every path in (a row's record, the values a sink holds) and out (the
    update trigger): the contentless index must be told to forget what it was given."""
    return (f"{title}, CASE WHEN replace({text}, char(10, 10), ' ') = {summary} "
            f"THEN NULL ELSE {summary} END, {text}")


def _fts_columns(row: str) -> str:
    """SQL: the indexed values of a row of `items` (`row`: "" or "old.")."""
    record = f"{row}record"
    return _indexed(f"{row}title", f"json_extract({record}, '$.summary')",
                    f"json_extract({record}, '$.content_text')")


# Schema migrations, applied in order at open; `schema_version` holds the last applied.
# Each step must be safe to run on a database created by the previous steps.
_MIGRATIONS: tuple[str, ...] = (
    # 1 (#2): one row per item, the record as JSON beside the columns queries filter on.
    """
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
    """,
    # 2 (#5): full-text search (FTS5) kept in step by triggers, which fire only
    # when the upsert really wrote (an older version never reaches the index);
    # cluster lookups.
    """
    CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(
        title, summary, content_text, tokenize = 'unicode61 remove_diacritics 2');
    CREATE TRIGGER IF NOT EXISTS items_fts_insert AFTER INSERT ON items BEGIN
        INSERT INTO items_fts (rowid, title, summary, content_text) VALUES (new.rowid, new.title,
            json_extract(new.record, '$.summary'), json_extract(new.record, '$.content_text'));
    END;
    CREATE TRIGGER IF NOT EXISTS items_fts_update AFTER UPDATE ON items BEGIN
        DELETE FROM items_fts WHERE rowid = old.rowid;
        INSERT INTO items_fts (rowid, title, summary, content_text) VALUES (new.rowid, new.title,
            json_extract(new.record, '$.summary'), json_extract(new.record, '$.content_text'));
    END;
    DELETE FROM items_fts;
    INSERT INTO items_fts (rowid, title, summary, content_text)
        SELECT rowid, title, json_extract(record, '$.summary'),
               json_extract(record, '$.content_text')
        FROM items;
    CREATE INDEX IF NOT EXISTS items_cluster ON items (cluster_id);
    """,
    # 3 (#14): when each item was first stored (the fetch time of its first version),
    # kept by later versions: a cluster's members in the order they were seen.
    """
    ALTER TABLE items ADD COLUMN first_seen_at TEXT;
    UPDATE items SET first_seen_at = fetched_at;
    CREATE INDEX IF NOT EXISTS items_cluster_first_seen ON items (cluster_id, first_seen_at);
    """,
    # 4 (#9): the full-text index fed in bulk (see the module docstring). A row
    # written since the last indexing is noted once; `replaces` says whether the
    # index may hold an older version of it to delete first. (Not INSERT OR IGNORE:
    # the upsert's own conflict policy would override it inside the trigger.)
    """
    DROP TRIGGER IF EXISTS items_fts_insert;
    DROP TRIGGER IF EXISTS items_fts_update;
    CREATE TABLE IF NOT EXISTS fts_pending (
        item_rowid INTEGER PRIMARY KEY,
        replaces   INTEGER NOT NULL
    );
    CREATE TRIGGER IF NOT EXISTS fts_pending_insert AFTER INSERT ON items BEGIN
        INSERT INTO fts_pending (item_rowid, replaces) SELECT new.rowid, 0
            WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE item_rowid = new.rowid);
    END;
    CREATE TRIGGER IF NOT EXISTS fts_pending_update AFTER UPDATE ON items BEGIN
        INSERT INTO fts_pending (item_rowid, replaces) SELECT new.rowid, 1
            WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE item_rowid = new.rowid);
    END;
    """,
    # 5 (#21): the full-text index without its own copy of the text (contentless:
    # searches only match and rank, and read the record from `items`), rebuilt
    # from the stored records. A contentless index forgets a row's words only when
    # told them again, so an update tells it, in its own transaction, the words of
    # the version the index holds (a row not pending is indexed as stored); a row
    # still pending was never indexed in that version. `replaces` is no longer used.
    # Segments are merged 16 at a time, not 4: less of the index is rewritten as it
    # grows (~12 µs a row of 30,000), searches read more segments (no slower measured).
    f"""
    DROP TRIGGER IF EXISTS fts_pending_update;
    DROP TABLE IF EXISTS items_fts;
    CREATE VIRTUAL TABLE items_fts USING fts5(title, summary, content_text, content = '',
        tokenize = 'unicode61 remove_diacritics 2');
    INSERT INTO items_fts (items_fts, rank) VALUES ('automerge', 16);
    INSERT INTO items_fts (rowid, title, summary, content_text)
        SELECT rowid, {_fts_columns("")} FROM items;
    DELETE FROM fts_pending;
    CREATE TRIGGER fts_pending_update AFTER UPDATE ON items BEGIN
        INSERT INTO items_fts (items_fts, rowid, title, summary, content_text)
            SELECT 'delete', old.rowid, {_fts_columns("old.")}
            WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE item_rowid = old.rowid);
        INSERT INTO fts_pending (item_rowid, replaces) SELECT new.rowid, 0
            WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE item_rowid = new.rowid);
    END;
    """,
)

# Index the pending rows once this many are waiting, or this long after the last indexing.
_FTS_BATCH_ROWS = 2000
_FTS_BATCH_SECONDS = 1.0

# The rows to index, each with what says which version is stored (compared with
# the values this sink holds). The index holds no older version of them (see migration 5).
_PENDING = """SELECT fts_pending.item_rowid, items.id, items.version, items.content_hash
              FROM fts_pending JOIN items ON items.rowid = fts_pending.item_rowid"""
_INSERT_VALUES = ("INSERT INTO items_fts (rowid, title, summary, content_text) "
                  f"VALUES (?1, {_indexed('?2', '?3', '?4')})")
_INSERT_FROM_RECORD = f"""INSERT INTO items_fts (rowid, title, summary, content_text)
       SELECT rowid, {_fts_columns("")}
       FROM items WHERE rowid IN (SELECT value FROM json_each(?))"""
_CLEAR_PENDING = "DELETE FROM fts_pending"

# (title, summary, content_text) of a record, which `_indexed` turns into what is indexed.
FtsValues = tuple[str, str | None, str | None]

# A replayed or reordered older version never overwrites a newer one.
_UPSERT = """
INSERT INTO items (id, version, feed_id, url, title, published_at, fetched_at, language,
                   cluster_id, content_hash, record, first_seen_at)
VALUES (:id, :version, :feed_id, :url, :title, :published_at, :fetched_at, :language,
        :cluster_id, :content_hash, :record, :fetched_at)
ON CONFLICT (id) DO UPDATE SET
    version = excluded.version, feed_id = excluded.feed_id, url = excluded.url,
    title = excluded.title, published_at = excluded.published_at,
    fetched_at = excluded.fetched_at, language = excluded.language,
    cluster_id = excluded.cluster_id, content_hash = excluded.content_hash,
    record = excluded.record
WHERE excluded.version >= items.version
"""



def fts_values(record: dict[str, Any]) -> FtsValues | None:
    """Pure: the title, summary and content_text a record's row is indexed from (by
    `_indexed`), as json_extract reads them from its stored JSON; None when they might
    differ (anything but text, or a NUL, at which json_extract ends a string): such a
    row is indexed from its stored record."""
    values = (record.get("title") or "", record.get("summary"), record.get("content_text"))
    for value in values:
        if value is not None and (type(value) is not str or "\0" in value):
            return None
    return values


def _fts_terms(text: str) -> str:
    """Pure: user words -> an FTS5 query matching all of them, each quoted (no syntax errors)."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"' for w in words)


def _where(query: ItemQuery, alias: str = "items") -> tuple[str, list[Any]]:
    """Pure: the SQL conditions and parameters of a query's filters."""
    when = f"COALESCE({alias}.published_at, {alias}.fetched_at)"
    conds: list[str] = []
    params: list[Any] = []
    if query.feed_id:
        conds.append(f"{alias}.feed_id = ?")
        params.append(query.feed_id)
    if query.since:
        conds.append(f"{when} >= ?")
        params.append(query.since)
    if query.until:
        conds.append(f"{when} < ?")
        params.append(query.until)
    if query.language:
        conds.append(f"({alias}.language = ? OR {alias}.language LIKE ? || '-%')")
        params += [query.language, query.language]
    if query.cluster_id:
        conds.append(f"{alias}.cluster_id = ?")
        params.append(query.cluster_id)
    if query.after and not query.text:
        conds.append(f"({when} < ? OR ({when} = ? AND {alias}.id > ?))")
        params += [query.after[0], query.after[0], query.after[1]]
    return (" AND ".join(conds) or "1"), params


def _order(query: ItemQuery) -> str:
    """Pure: the ORDER BY of a query without search terms (ItemQuery.order)."""
    if query.order != "first_seen":
        return "COALESCE(published_at, fetched_at) DESC, id"
    first = "id <> cluster_id, " if query.cluster_id else ""  # false (0) sorts first
    return f"{first}first_seen_at, id"


class SQLiteSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._unindexed = 0  # rows this sink wrote since it last fed the full-text index
        # id -> (version, content_hash, values) of rows this sink stored since it last
        # fed the index: used for the pending rows that still hold that version.
        self._fts_values: dict[str, tuple[int, str, FtsValues]] = {}
        self._indexed_at = time.monotonic()

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
        """Open, switch to WAL and migrate; retried while another sink does the same.

        Switching to WAL and the first migration need an exclusive lock for
        which SQLite may answer "database is locked" at once instead of
        waiting (it avoids a deadlock), when several sinks start together.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 10
        while True:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=5.0)
            try:
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                _migrate(conn)
                return conn
            except sqlite3.OperationalError as e:
                conn.close()
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    async def _call(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            try:
                return await asyncio.to_thread(fn, *args)
            except (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError,
                    sqlite3.ProgrammingError, TypeError) as e:
                raise RecordRejected(f"sqlite {self.path}: {e}") from e
            except sqlite3.Error as e:
                raise StorageError(f"sqlite {self.path}: {e}") from e

    async def open(self) -> None:
        if self._conn is None:
            self._conn = await self._call(self._connect)

    def _upsert_sync(self, rows: list[dict[str, Any]], records: Sequence[dict[str, Any]]) -> int:
        assert self._conn is not None
        with _transaction(self._conn) as conn:
            conn.executemany(_UPSERT, rows)
        for row, record in zip(rows, records, strict=True):  # committed: worth remembering
            values = fts_values(record)
            if values is not None:
                self._fts_values[row["id"]] = (row["version"], row["content_hash"], values)
        self._unindexed += len(rows)
        if (self._unindexed >= _FTS_BATCH_ROWS
                or time.monotonic() - self._indexed_at >= _FTS_BATCH_SECONDS):
            self._index_pending_sync()
        return len(rows)

    def _index_pending_sync(self) -> None:
        """Feed the full-text index every row written since it was last fed (any sink's)."""
        assert self._conn is not None
        held, self._fts_values = self._fts_values, {}
        with _transaction(self._conn) as conn:
            known: list[tuple[int, str, str | None, str | None]] = []
            unknown: list[int] = []
            for rowid, item_id, version, content_hash in conn.execute(_PENDING).fetchall():
                mine = held.get(item_id)
                if mine is not None and mine[0] == version and mine[1] == content_hash:
                    known.append((rowid, *mine[2]))
                else:
                    unknown.append(rowid)
            if known:
                conn.executemany(_INSERT_VALUES, known)
            if unknown:
                conn.execute(_INSERT_FROM_RECORD, (orjson.dumps(unknown).decode(),))
            conn.execute(_CLEAR_PENDING)
        self._unindexed = 0
        self._indexed_at = time.monotonic()

    async def upsert(self, records: Sequence[dict[str, Any]]) -> int:
        if not records:
            return 0
        await self.open()
        try:
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
        except (KeyError, TypeError, ValueError) as e:
            raise RecordRejected(f"sqlite {self.path}: bad record: {e!r}") from e
        result: int = await self._call(self._upsert_sync, rows, records)
        return result

    def _query_sync(self, query: ItemQuery) -> list[dict[str, Any]]:
        assert self._conn is not None
        where, params = _where(query)
        if query.text:
            self._index_pending_sync()  # a search sees every stored item
            sql = ("SELECT items.record FROM items_fts "
                   "JOIN items ON items.rowid = items_fts.rowid "
                   f"WHERE items_fts MATCH ? AND {where} "
                   "ORDER BY bm25(items_fts), items.id LIMIT ? OFFSET ?")
            params = [_fts_terms(query.text), *params]
        else:
            sql = f"SELECT record FROM items WHERE {where} ORDER BY {_order(query)} LIMIT ? OFFSET ?"
        params += [query.limit, query.offset]
        return [orjson.loads(row[0]) for row in self._conn.execute(sql, params)]

    async def query(self, query: ItemQuery) -> list[dict[str, Any]]:
        await self.open()
        if query.text is not None and not query.text.split():
            return []
        result: list[dict[str, Any]] = await self._call(self._query_sync, query)
        return result

    async def close(self) -> None:
        if self._conn is not None:
            if self._unindexed:
                try:
                    await self._call(self._index_pending_sync)
                except StorageError:  # the next sink or search indexes them
                    pass
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE (the write lock at once, so a busy database waits here, not
    mid-way), COMMIT on success, ROLLBACK on anything raised, which propagates."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations not yet applied, each in its own transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    found = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    where = conn.execute("PRAGMA database_list").fetchone()[2]  # the main database's file
    check_schema_version(found, len(_MIGRATIONS), f"sqlite {where}")
    for number, script in enumerate(_MIGRATIONS, start=1):
        with _transaction(conn):
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            if (row[0] or 0) < number:
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out
