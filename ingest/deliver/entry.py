"""One stream entry as a consumer group hands it over.

Its own module so that the group loop (groups) and the dead-letter stream
(dead), which both handle entries, need not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Entry"]


@dataclass(frozen=True, eq=False)  # identity: handlers return the entries they were given
class Entry:
    """One stream entry as a consumer group delivered it."""

    stream: str  # the stream it came from (the item stream or the group's retry stream)
    id: bytes  # the entry id, e.g. b"1700000000000-0"
    fields: Mapping[bytes, bytes]  # the entry's fields; items carry b"item"

    @property
    def raw(self) -> bytes:
        return self.fields.get(b"item", b"")
