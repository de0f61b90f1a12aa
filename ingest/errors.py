"""One exception tree for the whole service.

    IngestError                      anything this service reports on purpose
    ├── SettingsError                a setting is unknown or has a bad value (names the key)
    ├── RedisUnavailable             the Redis server cannot be reached
    ├── FetchError                   an HTTP fetch failed (status, timeout, size, network)
    │   ├── HTTPStatusError          the server answered with an error status
    │   ├── BodyTooLarge             the body exceeded max_body_bytes
    │   └── URLRefused               the URL's scheme or address is not allowed (SSRF guard)
    ├── ParseError                   the body is not a feed we can read
    ├── DeliveryConflict             concurrent jobs kept racing on the same items (retryable)
    ├── WorkersCannotStart           the worker code does not import (a broken install): no retry helps
    ├── Busy                         backpressure: the item stream is near its cap (try later)
    └── StorageError                 the storage sink could not write or read

Foreign errors (aiohttp, feedparser, redis, sqlite3) are wrapped `from e` in
the module that calls the library, so callers only ever catch IngestError.
Every exception here takes a single message argument so that it survives
pickling through arq's job results unchanged.
"""

from __future__ import annotations

__all__ = [
    "BodyTooLarge",
    "Busy",
    "DeliveryConflict",
    "FetchError",
    "HTTPStatusError",
    "IngestError",
    "ParseError",
    "RedisUnavailable",
    "SettingsError",
    "StorageError",
    "URLRefused",
    "WorkersCannotStart",
]


class IngestError(Exception):
    """Base of every error this service raises on purpose."""


class SettingsError(IngestError):
    """A configuration key is unknown or its value is invalid."""


class RedisUnavailable(IngestError):
    """Redis could not be reached (not running, wrong URL, embedded server not started)."""


class FetchError(IngestError):
    """Fetching a URL failed before a usable body arrived."""


class HTTPStatusError(FetchError):
    """The server answered with a status that carries no feed (4xx, 5xx)."""


class BodyTooLarge(FetchError):
    """The response body was longer than the configured maximum."""


class URLRefused(FetchError):
    """The URL may not be fetched: not http(s), or it points at a refused address."""


class ParseError(IngestError):
    """The body could not be read as a feed (not a feed, or too broken to recover)."""


class DeliveryConflict(IngestError):
    """Other workers kept delivering the same items meanwhile; the job should be retried."""


class Busy(IngestError):
    """The service takes no new work now (backpressure, #20): durable consumer groups lag and
    the item stream is near its cap. It resumes by itself once they catch up."""


class StorageError(IngestError):
    """The storage backend failed to read or write."""


class WorkersCannotStart(IngestError):
    """The worker code does not import (a missing or incompatible package).

    Restarting cannot mend an install, so `ingest run` stops with this error instead
    of restarting its workers every few seconds while looking alive."""
