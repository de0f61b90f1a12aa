"""What every storage backend offers: idempotent batched upserts and queries.

Errors: a backend raises `StorageError` when it cannot work at all (database
unreachable, disk full: the batch is retried later, nothing is given up), and
its subclass `RecordRejected` when the data itself was refused (a value the
schema cannot hold): the consumer then isolates the bad record and, after
`sink_max_attempts` tries, dead-letters it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ingest.errors import StorageError

__all__ = ["ORDERS", "ItemQuery", "RecordRejected", "Sink", "check_schema_version", "parse_time"]

ORDERS = ("newest", "first_seen")


class RecordRejected(StorageError):
    """The backend refused a record's data (not an outage); retrying the same data will not help."""


def check_schema_version(found: int, known: int, where: str) -> None:
    """Refuse a database a newer ingest has migrated (after a rollback, or one old sink
    left among upgraded ones). Its schema may hold what this code cannot keep right: a
    full-text index fed by triggers this code does not know of (migration 5 of SQLite)
    would silently keep stale words. Refusing is an outage, not a loss: the sink's
    stream entries stay pending until a version that knows the schema stores them."""
    if found > known:
        raise StorageError(
            f"{where}: the database's schema is version {found}, newer than this ingest "
            f"knows ({known}): a newer ingest migrated it. Run that version or a newer "
            f"one, or point storage_url at another database.")


@dataclass(frozen=True)
class ItemQuery:
    """Filters of `ingest items` and `ingest search`; None means "any"."""

    feed_id: str | None = None
    since: str | None = None  # ISO 8601 UTC; items published (else fetched) at or after
    until: str | None = None  # ISO 8601 UTC; items published (else fetched) before
    language: str | None = None  # exact tag, or its primary subtag ("de" matches "de-DE")
    cluster_id: str | None = None
    text: str | None = None  # full-text search terms (database's own FTS)
    limit: int = 50
    # "newest": by published (else fetched) time, newest first. "first_seen": by the
    # fetch time of the first version stored (`first_seen_at` column), oldest first; with `cluster_id`, the
    # cluster's own item (its id is the cluster id: the copy seen first) leads, then
    # the outlets that carried the story since. `text` always orders by relevance.
    order: str = "newest"
    offset: int = 0  # rows to skip first (pages of a search, ranked by relevance)
    # Keyset page of a newest-first listing: (published-else-fetched time, id) of the
    # last item of the previous page; the page holds what sorts after it.
    after: tuple[str, str] | None = None


def parse_time(value: str) -> str:
    """Pure: a CLI time (`2025-01-06`, `2025-01-06T10:00`, `...Z`, `+09:00`) as UTC ISO 'Z'.

    Stored times are ISO 8601 UTC strings ending in Z, so comparing strings of
    the same shape is comparing times. Raises ValueError on anything else.
    """
    from datetime import UTC, datetime

    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Sink(Protocol):
    async def open(self) -> None:
        """Connect and create or migrate the schema."""

    async def upsert(self, records: Sequence[dict[str, Any]]) -> int:
        """Insert or update by `id`, never replacing a newer version; commit before returning."""

    async def query(self, query: ItemQuery) -> list[dict[str, Any]]:
        """Stored records matching the filters, in `query.order` (best match first with `text`)."""

    async def close(self) -> None: ...
