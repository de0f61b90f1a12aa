"""Storage sinks: where items rest. Chosen by `storage_url` (see `open_sink`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ingest.errors import SettingsError
from ingest.sinks.base import Sink

__all__ = ["Sink", "open_sink"]


def open_sink(storage_url: str) -> Sink:
    scheme = urlsplit(storage_url).scheme
    if scheme == "sqlite":
        from ingest.sinks.sqlite import SQLiteSink

        return SQLiteSink.from_url(storage_url)
    raise SettingsError(f"setting 'storage_url': unsupported scheme {scheme!r}")
