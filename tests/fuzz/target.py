"""One document through every pure stage a worker runs, for property tests and fuzzing.

parse (with the entity guard) -> entry cap -> raw bounds -> normalize -> field
caps -> JSON, exactly as workers/pipeline.py does minus Redis. The contract
checked by `check_document`: the only exception is ParseError (a document
refused with its reason); every record serializes; dates are ISO 8601 UTC or
null; every cap holds. tests/test_fuzz_properties.py drives it with
hypothesis; tests/fuzz/atheris_feed.py with atheris for long runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ingest.errors import ParseError
from ingest.models import FeedSpec, Item, item_to_json
from workers.limits import Limits, bound_entry, cap_entries, cap_item
from workers.normalize.record import entry_fingerprint, entry_identity, normalize_entry
from workers.parse import parse_feed_bytes

__all__ = ["LIMITS", "check_document", "records_of"]

URL = "https://feeds.example/fuzz.xml"
SPEC = FeedSpec("fuzz", URL)
FETCHED_AT = "2026-01-01T00:00:00.000000Z"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Small caps, so that examples of ordinary size exercise them.
LIMITS = Limits(max_entries_per_document=20, max_text_chars=200, max_content_chars=2000,
                max_list_items=5, max_entity_expansion_bytes=10_000)


def records_of(body: bytes, headers: Mapping[str, str] | None = None,
               limits: Limits = LIMITS) -> list[Item]:
    """The records a worker would deliver for `body`; ParseError when it refuses it."""
    parsed: Any = parse_feed_bytes(body, headers or {}, URL, limits.max_entity_expansion_bytes,
                                   limits.max_entries_per_document)
    entries, _ = cap_entries(list(parsed["entries"]), limits)
    items: list[Item] = []
    for entry in entries:
        try:
            entry_identity(SPEC.feed_id, entry, URL)
            entry_fingerprint(entry)
        except Exception:  # noqa: BLE001 - the pipeline skips and counts such an entry
            continue
        bounded, trimmed = bound_entry(entry, limits)
        item = cap_item(normalize_entry(bounded, parsed["feed"], SPEC, URL, FETCHED_AT), limits, trimmed)
        items.append(item)
    return items


def check_document(body: bytes, headers: Mapping[str, str] | None = None) -> list[Item]:
    """records_of + the contract; raises AssertionError on a violation."""
    try:
        items = records_of(body, headers)
    except ParseError:
        return []
    for item in items:
        record = orjson.loads(item_to_json(item))
        for key in ("published_at", "updated_at"):
            assert record[key] is None or ISO_UTC.match(record[key]), (key, record[key])
        for key in ("title", "guid", "url", "link", "feed_title", "source"):
            assert record[key] is None or len(record[key]) <= LIMITS.max_text_chars, key
        for key in ("summary", "content_text", "content_html"):
            assert len(record[key]) <= LIMITS.max_content_chars, key
        for key in ("authors", "categories", "enclosures"):
            assert len(record[key]) <= LIMITS.max_list_items, key
        for enclosure in record["enclosures"]:
            assert enclosure["length"] is None or 0 <= enclosure["length"] < 2**63
    return items
