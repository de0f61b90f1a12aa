"""Caps on what one document and one record may carry. Pure functions of `Limits`.

A 100,000-item feed took a worker to 1.7 GB, one 15 MB text node became a
47 MB record on the stream, and a 1 MB title, a 100 KB guid and 10,000
enclosures all passed (#12). Consumers and Redis should carry records of a
predictable size, so:

* `cap_entries` keeps the first `max_entries_per_document` entries of a
  document (feeds list newest first) and says how many it dropped;
* `bound_entry` trims the raw entry before normalization (strings to a few
  times the field cap, lists to `max_list_items`), so the normalizer's work
  is bounded as well as its output;
* `cap_item` cuts every record field to its cap, replaces characters JSON
  cannot carry (lone surrogates), drops numbers JSON cannot carry (an
  enclosure length of 10^30), and names each cut field in `truncated`.

The excess is counted by the pipeline (`entries_dropped`, `items_truncated`
in <ns>:stats). A capped record is still a whole, valid record.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from ingest.models import Enclosure, Item
from ingest.settings import Settings

__all__ = ["Limits", "bound_entry", "cap_entries", "cap_item", "scrub_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_LENGTH = 2**63 - 1  # largest integer every JSON consumer we know reads exactly
# Raw strings may be this many times the field cap: markup and entities shrink in cleaning.
_RAW_FACTOR = 4

# Raw entry keys -> the record field they become (names used in `truncated`).
_RAW_TEXT = {"title": "title", "id": "guid", "link": "link", "summary": "summary",
             "author": "authors", "description": "summary"}
_RAW_SHORT = frozenset({"title", "id", "link", "author"})  # become short fields
_RAW_LISTS = {"enclosures": "enclosures", "media_content": "enclosures",
              "media_thumbnail": "enclosures", "tags": "categories", "authors": "authors",
              "contributors": "authors", "links": "enclosures", "content": "content_html"}


@dataclasses.dataclass(frozen=True)
class Limits:
    """The caps (settings of the same names; see config/default.toml)."""

    max_entries_per_document: int = 1000
    max_text_chars: int = 2048  # title, guid, url, link, feed title, each author/category/URL
    max_content_chars: int = 200_000  # summary, content_html, content_text
    max_list_items: int = 50  # authors, categories, enclosures
    max_entity_expansion_bytes: int = 1_000_000  # workers/xmlguard.py
    fast_parser: bool = True  # not a cap: whether workers/fastfeed.py may read documents first

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


def scrub_text(text: str) -> str:
    """`text` without lone surrogates (U+FFFD instead): orjson refuses them, and so
    would any UTF-8 consumer; a `&#xD800;` in one entry sank the whole feed."""
    if text.isascii():  # O(1) in CPython: most text needs no scan
        return text
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def cap_entries(entries: list[Any], limits: Limits) -> tuple[list[Any], int]:
    """(the entries kept, how many were dropped)."""
    keep = limits.max_entries_per_document
    return (entries, 0) if len(entries) <= keep else (entries[:keep], len(entries) - keep)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def bound_entry(entry: Mapping[str, Any], limits: Limits) -> tuple[Mapping[str, Any], list[str]]:
    """A shallow copy of a raw entry with oversized strings and lists trimmed, and the
    record fields that were affected. Returns `entry` itself when nothing is too big."""
    text_cap = limits.max_content_chars * _RAW_FACTOR
    touched: list[str] = []
    changes: dict[str, Any] = {}
    for key, value in entry.items():
        cap = limits.max_text_chars * _RAW_FACTOR if key in _RAW_SHORT else text_cap
        if isinstance(value, str) and len(value) > cap:
            changes[key] = value[:cap]
            touched.append(_RAW_TEXT.get(key, key))
        elif isinstance(value, list):
            items = value[: limits.max_list_items] if key in _RAW_LISTS else value
            if key == "content":
                items = [_bound_detail(d, text_cap) for d in items]
            if len(items) != len(value) or any(a is not b for a, b in zip(items, value, strict=False)):
                changes[key] = items
                touched.append(_RAW_LISTS.get(key, key))
    if not changes:
        return entry, []
    copy = entry.__class__(entry) if isinstance(entry, dict) else dict(entry)
    copy.update(changes)
    return copy, sorted(set(touched))


def _bound_detail(detail: Any, cap: int) -> Any:
    if isinstance(detail, dict):
        value = detail.get("value")
        if isinstance(value, str) and len(value) > cap:
            copy = detail.__class__(detail)
            copy["value"] = value[:cap]
            return copy
    return detail


def _cap_html(html: str, limit: int) -> str:
    """Cut sanitized HTML before the last tag that would be split."""
    if len(html) <= limit:
        return html
    cut = html[:limit]
    open_at = cut.rfind("<")
    if open_at > cut.rfind(">"):
        cut = cut[:open_at]
    return cut


def _cap_texts(values: list[str], limits: Limits) -> list[str]:
    return [_cut(scrub_text(v), limits.max_text_chars) for v in values[: limits.max_list_items]]


def cap_item(item: Item, limits: Limits, already: list[str] | None = None) -> Item:
    """`item` within the caps, every string JSON-safe, cut fields named in `truncated`.

    `already` names fields `bound_entry` trimmed before normalization.
    """
    short = limits.max_text_chars
    long = limits.max_content_chars
    changes: dict[str, Any] = {}
    cut: set[str] = set(already or ())
    for name in ("feed_title", "title", "url", "link", "guid", "source", "summary",
                 "content_text", "content_html", "language"):
        value = getattr(item, name)
        if not isinstance(value, str):
            continue
        limit = long if name in ("summary", "content_text", "content_html") else short
        clean = scrub_text(value)
        capped: str | None = _cap_html(clean, limit) if name == "content_html" else _cut(clean, limit)
        if name in ("url", "link") and len(clean) > limit:
            capped = None  # a cut URL points somewhere else: no URL rather than a wrong one
        if capped is None or len(capped) < len(clean):
            cut.add(name)
        if capped is not value:
            changes[name] = capped
    for name in ("authors", "categories"):
        values: list[str] = getattr(item, name)
        capped_list = _cap_texts(values, limits)
        if capped_list != values:
            changes[name] = capped_list
            if len(capped_list) < len(values) or any(
                    len(a) < len(scrub_text(b)) for a, b in zip(capped_list, values, strict=False)):
                cut.add(name)
    enclosures = _cap_enclosures(item.enclosures, limits)
    if enclosures != item.enclosures:
        changes["enclosures"] = enclosures
        if len(enclosures) < len(item.enclosures):
            cut.add("enclosures")
    if cut:
        changes["truncated"] = sorted(cut)
    return dataclasses.replace(item, **changes) if changes else item


def _cap_enclosures(enclosures: list[Enclosure], limits: Limits) -> list[Enclosure]:
    out: list[Enclosure] = []
    for enc in enclosures[: limits.max_list_items]:
        if len(enc.url) > limits.max_text_chars:
            continue  # a cut URL is a wrong URL: drop it (and count the cut via the list)
        length = enc.length if enc.length is None or 0 <= enc.length <= _MAX_LENGTH else None
        mime = _cut(scrub_text(enc.type), limits.max_text_chars) if enc.type else enc.type
        if length != enc.length or mime != enc.type or scrub_text(enc.url) != enc.url:
            enc = Enclosure(url=scrub_text(enc.url), type=mime, length=length)
        out.append(enc)
    return out
