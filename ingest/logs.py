"""Logging setup: stdlib logging, as text for people or JSON lines for collectors."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from ingest.settings import Settings

__all__ = ["configure_logging"]


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
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
