"""Logging setup: stdlib logging, as text for people or JSON lines for collectors.

With `log_format = "json"` every line is one JSON object. Lines logged while
a feed is being fetched or processed carry `feed_id` and `feed_url`: the
poller's per-feed task and each worker job call `feed_context` once, and the
context variable follows the work into everything it calls (asyncio copies
it into tasks), so no log call has to pass the feed along.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime

import orjson

from ingest.settings import Settings

__all__ = ["configure_logging", "feed_context"]

_FEED: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("ingest_feed", default=None)


def feed_context(feed_id: str, url: str) -> None:
    """Name the feed the current task works on, for every log line it writes from now on."""
    _FEED.set((feed_id, url))


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        feed = _FEED.get()
        if feed is not None:
            entry["feed_id"], entry["feed_url"] = feed
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # arq logs every job at INFO; keep that at our level only when debugging.
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("arq").setLevel(max(logging.WARNING, root.level))
