"""What every storage backend offers: idempotent batched upserts and queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ItemQuery", "Sink"]


@dataclass(frozen=True)
class ItemQuery:
    feed_id: str | None = None
    limit: int = 50


class Sink(Protocol):
    async def open(self) -> None:
        """Connect and create or migrate the schema."""

    async def upsert(self, records: Sequence[dict[str, Any]]) -> int:
        """Insert or update by `id`, never replacing a newer version; commit before returning."""

    async def query(self, query: ItemQuery) -> list[dict[str, Any]]:
        """Stored records, newest first."""

    async def close(self) -> None: ...
