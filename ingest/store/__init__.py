"""Storage sinks: where items rest. Chosen by `storage_url` (see `open_sink`).

    sqlite:///PATH                               SQLiteSink (default; WAL, FTS5)
    postgresql://USER@HOST:PORT/DB[?schema=S]    PostgresSink (asyncpg; JSONB, tsvector)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ingest.errors import SettingsError
from ingest.store.base import ItemQuery, RecordRejected, Sink

__all__ = ["ItemQuery", "RecordRejected", "Sink", "open_sink"]

POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_sink(storage_url: str) -> Sink:
    scheme = urlsplit(storage_url).scheme
    if scheme == "sqlite":
        from ingest.store.sqlite import SQLiteSink

        return SQLiteSink.from_url(storage_url)
    if scheme in POSTGRES_SCHEMES:
        from ingest.store.postgres import PostgresSink

        return PostgresSink.from_url(storage_url)
    raise SettingsError(f"setting 'storage_url': unsupported scheme {scheme!r}")
