"""The differential check behind tests/test_fastfeed.py: the fast path against feedparser.

`compare(body, headers)` parses one document both ways through workers/parse.py
(`fast=True` and `fast=False`) and, when the fast reader took it, asserts that
feedparser's result and the fast one are the same: entry dicts and feed dict
byte for byte as orjson dumps them (key order included, so the entry
fingerprints are equal), version and bozo, and then the records normalize_entry
makes of each entry, field by field, with `fetched_at` fixed. It returns
whether the fast reader took the document (or the reason it declined).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ingest.errors import ParseError
from ingest.models import FeedSpec, item_to_json
from workers.fastfeed import parse_fast
from workers.jsonfeed import looks_like_json
from workers.normalize.record import entry_fingerprint, normalize_entry
from workers.parse import parse_feed_bytes
from workers.xmlguard import defuse_char_refs, entity_refusal

__all__ = ["FETCHED_AT", "compare", "dump"]

FETCHED_AT = "2026-01-01T00:00:00Z"


def dump(value: Any) -> bytes:
    """The bytes entry_fingerprint hashes (orjson, insertion order)."""
    return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS)


def _took_fast(body: bytes, headers: Mapping[str, str]) -> bool:
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered.pop("content-location", None)
    if not body.strip() or looks_like_json(body, lowered.get("content-type", "")) or entity_refusal(body):
        return False
    return parse_fast(defuse_char_refs(body), lowered) is not None


def _records(parsed: Any, url: str) -> list[dict[str, Any]]:
    spec = FeedSpec("diff", url)
    out = []
    for entry in parsed["entries"]:
        try:
            record = orjson.loads(item_to_json(normalize_entry(entry, parsed["feed"], spec, url, FETCHED_AT)))
        except Exception as e:  # the pipeline skips such an entry: both paths must fail alike
            record = {"error": type(e).__name__}
        out.append(record)
    return out


def compare(body: bytes, headers: Mapping[str, str] | None = None,
            url: str = "https://feeds.example/diff.xml") -> bool:
    """True when the fast path read `body` (and matched feedparser), False when it declined."""
    headers = dict(headers or {})
    try:
        slow: Any = parse_feed_bytes(body, headers, url, fast=False)
    except ParseError as e:
        slow = e
    try:
        quick: Any = parse_feed_bytes(body, headers, url, fast=True)
    except ParseError as e:
        quick = e
    if isinstance(slow, ParseError) or isinstance(quick, ParseError):
        assert str(quick) == str(slow), "the paths disagree on refusing the document"
        return False
    took = _took_fast(body, headers)
    if not took:
        return False
    assert quick["version"] == slow["version"] and bool(quick["bozo"]) == bool(slow["bozo"])
    assert len(quick["entries"]) == len(slow["entries"])
    assert dump(quick["feed"]) == dump(slow["feed"]), (dump(quick["feed"]), dump(slow["feed"]))
    for fast_entry, feedparser_entry in zip(quick["entries"], slow["entries"], strict=True):
        assert dump(fast_entry) == dump(feedparser_entry), (dump(fast_entry), dump(feedparser_entry))
        assert entry_fingerprint(fast_entry) == entry_fingerprint(feedparser_entry)
    fast_records, feedparser_records = _records(quick, url), _records(slow, url)
    for fast_record, feedparser_record in zip(fast_records, feedparser_records, strict=True):
        for field in feedparser_record.keys() | fast_record.keys():
            assert fast_record.get(field) == feedparser_record.get(field), field
    return True
