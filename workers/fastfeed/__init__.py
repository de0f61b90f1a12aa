"""Well-formed RSS 2.0 / Atom 1.0 -> feedparser's own result, without feedparser's SAX handlers.

feedparser drives expat through xml.sax and a Python handler per event: the
escaped HTML of a news item alone is ~70 handler calls, 0.7-0.9 ms per entry
of the benchmark farm (#9). Here lxml builds the tree in C and each element of
a small, known vocabulary is read the way feedparser's handler for it would
read it (`feedparser/mixin.py` `pop()` and `namespaces/_base.py`), in document
order, into dicts with the same keys, values and order as feedparser's
`FeedParserDict`s. They are plain dicts (#21): reading a FeedParserDict costs a
Python call per key through its aliases, and normalization takes the one alias
it needs, `enclosures` from `links`, itself (`updated` falling back on
`published` it never wanted). So the entry fingerprint (an orjson hash of the
entry, key order included) and every record are the ones feedparser gives; the
result object around them is still a FeedParserDict. The values are
decided by feedparser's own helpers: `_parse_date`, `looks_like_html`,
`_urljoin`, its cp1252 table and its double-encoded-UTF-8 repair.

The reader is deliberately narrow and says no (returns None, and
workers/parse.py asks feedparser) to anything it is not sure of: a DOCTYPE or
entity declaration, lxml's slightest complaint, an encoding feedparser would
have to guess, RSS 1.0/RDF, Atom 0.3, xml:base, an element or attribute
outside the vocabulary below (unless feedparser has no handler for it and it
is a plain text leaf, which feedparser stores under its own name), markup
inside a text element, a repeated single-valued element, an empty document.

It is never less safe than feedparser: it runs after the same guards
(workers/xmlguard.py), lxml is told to resolve no entity, load no DTD and
touch no network, and lxml's own limits (no huge trees) end in a fallback.
The differential tests (tests/test_fastfeed.py) hold it to feedparser's
output on every fixture, the benchmark farm and generated documents.

    reader    feedparser's state and its pop(): where each value is stored
    elements  the vocabulary, one handler per element feedparser knows
    document  encoding, prolog and namespace checks; the walk's entry point
    skip      entries the caller has read before (KnownEntries), skipped by raw key
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from workers.fastfeed.skip import KnownEntries, SkippedEntry

__all__ = ["UNAVAILABLE", "KnownEntries", "SkippedEntry", "parse_fast"]

log = logging.getLogger(__name__)

# The reader borrows feedparser's private helpers (`_FeedParserMixin`, `_cp1252`,
# `_urljoin`, `_parse_date`), and is proved equal to feedparser 6.0's handlers.
# pyproject bounds feedparser below 7, where main already renames the mixin; an
# install that ignores the bound (or a 6.x that moves a name) must cost only speed:
# every document then goes to feedparser, and `import workers.parse` still works.
UNAVAILABLE: str | None
try:
    from workers.fastfeed.document import parse_fast as _parse_fast
except (ImportError, AttributeError) as e:
    UNAVAILABLE = f"fast feed reader off: this feedparser lacks a helper it reuses ({e})"
    log.warning("%s; feedparser reads every document", UNAVAILABLE)

    def parse_fast(body: bytes, response_headers: Mapping[str, str], known: KnownEntries | None = None) -> Any:
        """None: feedparser reads the document (see UNAVAILABLE)."""
        return None
else:
    UNAVAILABLE = None
    parse_fast = _parse_fast
