"""One stream entry as a consumer group hands it over.

Its own module so that the group loop (groups) and the dead-letter stream
(dead), which both handle entries, need not import each other. Every consumer
of the stream reads the record through `raw`, so the JSON it hands on is the
same whether the entry holds the JSON or a zstd frame of it (#21).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from ingest.deliver.streamcodec import decode_item

__all__ = ["Entry"]


@dataclass(frozen=True, eq=False)  # identity: handlers return the entries they were given
class Entry:
    """One stream entry as a consumer group delivered it."""

    stream: str  # the stream it came from (the item stream or the group's retry stream)
    id: bytes  # the entry id, e.g. b"1700000000000-0"
    fields: Mapping[bytes, bytes]  # the entry's fields; items carry b"item"

    @property
    def value(self) -> bytes:
        """The `item` field as stored: the record's JSON or a zstd frame of it."""
        return self.fields.get(b"item", b"")

    @cached_property
    def raw(self) -> bytes:
        """The record's JSON; ValueError (saying why) when the stored value is unreadable."""
        return decode_item(self.value)
