"""What is kept of an article page between fetches: its validators and what was read.

A page is fetched again when its entry changes (or on a follow-up try). With
the page's ETag / Last-Modified kept, that request is conditional, and a 304
reuses the text read the first time instead of fetching and extracting again.
Kept compactly (the plain-text paragraphs and the page's metadata, JSON
compressed with zlib: 1.2 KB for the seed story, ~1-4 KB for a news story) in `<ns>:page:<hash of the
URL>` for `full_text_page_ttl` seconds, and only for pages that sent a
validator. Pure: values in, bytes out, and back.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ingest.models import short_hash
from workers.article.extract import ArticleText, article_of_paragraphs
from workers.article.metadata import PageMeta

__all__ = ["KEPT_STATUSES", "KeptPage", "decode_page", "encode_page", "page_hash", "validators"]

# Outcomes worth keeping: a story, or the page's word that it has none.
# Paywalled, refused, robots and failed pages are never kept.
KEPT_STATUSES = frozenset({"ok", "empty"})
_VERSION = 1  # of the encoding: a kept page of another version is ignored


@dataclass(frozen=True)
class KeptPage:
    """An article page as read last time, with the validators to ask whether it changed."""

    etag: str | None
    last_modified: str | None
    status: str  # "ok" or "empty"
    article: ArticleText | None
    meta: PageMeta


def page_hash(url: str) -> str:
    """The key part for a page URL (URLs can be long; the key need not be readable)."""
    return short_hash(url)


def validators(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(ETag, Last-Modified) of a response (headers lower-cased by the fetcher)."""
    return headers.get("etag") or None, headers.get("last-modified") or None


def encode_page(page: KeptPage) -> bytes:
    doc: dict[str, Any] = {
        "v": _VERSION, "e": page.etag, "l": page.last_modified, "s": page.status,
        "p": page.article.paragraphs if page.article else None, "m": dataclasses.asdict(page.meta),
    }
    return zlib.compress(orjson.dumps(doc), 6)


def decode_page(raw: bytes | None) -> KeptPage | None:
    """The kept page, or None when there is none or it cannot be read (then the page is
    simply fetched unconditionally: nothing is lost)."""
    if not raw:
        return None
    try:
        doc = orjson.loads(zlib.decompress(raw))
        if not isinstance(doc, dict) or doc.get("v") != _VERSION or doc.get("s") not in KEPT_STATUSES:
            return None
        paragraphs = doc.get("p")
        article = article_of_paragraphs([str(p) for p in paragraphs]) if paragraphs else None
        meta = PageMeta(**doc["m"])
    except (zlib.error, orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return None
    if doc["s"] == "ok" and article is None:
        return None
    return KeptPage(etag=doc.get("e"), last_modified=doc.get("l"), status=doc["s"], article=article, meta=meta)
