"""What a caller hands the fast reader to skip entries it has read before, and gets back (#21).

No feedparser import here: the pipeline uses these names whether or not the reader
itself could be imported (workers/fastfeed/__init__.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KnownEntries", "SkippedEntry"]


@dataclass(frozen=True)
class KnownEntries:
    """Entries a caller has read before, by raw key: the reader does not read them again.

    An entry's raw key is 128 bits of a hash of `salt`, of what its reading depends on in
    the document (format, inherited language, namespaces) and of the entry element's bytes
    (workers/fastfeed/reader.py `Reader.raw_key`). The caller changes `salt` whenever what
    it keeps of an entry would change (its own code, the reader's), so keys made before
    never match. `values` maps the raw keys the caller knows to its value for each."""

    salt: bytes
    values: Mapping[bytes, Any]


@dataclass(frozen=True)
class SkippedEntry:
    """An entry in the result's place of one whose raw key was in KnownEntries.values:
    not read, its dict not built. `known` is the caller's value for `raw`."""

    raw: bytes
    known: Any
