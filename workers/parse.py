"""Bytes + headers -> feedparser result, or ParseError. feedparser never sees a URL.

Its sanitizer and relative-URI resolver are switched off: they cost about
half of its time and run on every entry, including the many we then skip as
already seen; workers/normalize/clean.py does both on the entries we keep.

Tolerance: feedparser recovers what it can from malformed XML (it sets
`bozo`). A document that yields entries is accepted (the problem is logged);
one that yields no entries and is not a recognisable (empty) feed is refused
with the reason, so an HTML page, a JSON error or garbage never passes as an
empty feed.

Fast path (#9): a well-formed RSS 2.0 or Atom 1.0 document in the
vocabulary workers/fastfeed.py knows is read there with lxml into exactly the
result feedparser gives (same dicts, same keys, same order), at about a third
of the cost; everything else, and everything it is unsure of, goes to
feedparser as before. `fast_parser = false` sends every document to feedparser.

Encodings: feedparser honours the HTTP charset, the XML declaration and a BOM.
When the bytes contradict the declaration it falls back on windows-1252; then
workers/encoding.py may pick a better encoding and we parse once more (only
on that path, so correctly declared feeds pay nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import feedparser
import feedparser.encodings

from ingest.errors import ParseError
from ingest.excerpt import excerpt
from workers.encoding import transcode_misdeclared
from workers.fastfeed import KnownEntries, parse_fast
from workers.jsonfeed import looks_like_json, parse_json_feed
from workers.xmlguard import DEFAULT_BUDGET, cut_after_entries, defuse_char_refs, entity_refusal

# feedparser asks chardet for an encoding whenever that package happens to be
# installed (readability-lxml, for one, pulls it in), so the same bytes gave
# other records on another machine. Records must not depend on what else is in
# the environment: chardet's guess is never taken; workers/encoding.py decides.
feedparser.encodings.lazy_chardet_encoding = None

__all__ = ["parse_feed_bytes"]

log = logging.getLogger(__name__)


def _feedparser(body: bytes, response_headers: dict[str, str], base_url: str) -> Any:
    try:
        return feedparser.parse(
            body,
            response_headers=response_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # feedparser promises not to raise; belt and braces
        raise ParseError(excerpt(f"{base_url}: feed parser failed: {type(e).__name__}: {e}")) from e


def parse_feed_bytes(
    body: bytes, headers: Mapping[str, str], base_url: str, entity_budget: int = DEFAULT_BUDGET,
    max_entries: int = 0, fast: bool = True, known: KnownEntries | None = None,
) -> Any:
    """Parse a feed document (XML via feedparser, or JSON Feed); `base_url` anchors links.

    An XML document whose entities would grow it past `entity_budget` bytes is
    refused before feedparser (whose lenient fallback would expand them) sees it.
    With `max_entries`, an XML document is cut before the entry past it, and
    `result["entries_cut"]` says how many entries were left unread.
    With `fast`, documents workers/fastfeed.py is sure of skip feedparser; with `known`
    too, that reader keys every entry (`result["entry_raws"]`) and skips those it lists
    (workers/rawseen.py). feedparser's results have neither.
    """
    if not body.strip():
        raise ParseError(f"{base_url}: empty body, not a feed")
    response_headers = {k.lower(): v for k, v in headers.items()}
    if looks_like_json(body, response_headers.get("content-type", "")):
        return parse_json_feed(body, base_url)
    # No content-location: feedparser would resolve every <guid> (and link) against
    # the document URL, so a guid "kst" would be stored as "https://host/kst" and
    # change when the feed moves. Links are made absolute in normalize instead,
    # against xml:base when declared (feedparser still tracks it), else this URL.
    response_headers.pop("content-location", None)
    refusal = entity_refusal(body, entity_budget)
    if refusal:
        raise ParseError(excerpt(f"{base_url}: refused before parsing: {refusal}"))
    body, cut = cut_after_entries(body, max_entries)
    body = defuse_char_refs(body)
    result = parse_fast(body, response_headers, known) if fast else None
    if result is not None:
        log.debug("%s: read by the fast parser", base_url)
    else:
        result = _feedparser(body, response_headers, base_url)
    # dict.get: FeedParserDict.get of a missing key costs ~20 µs (a KeyError through its aliases)
    if isinstance(dict.get(result, "bozo_exception"), feedparser.CharacterEncodingOverride):
        utf8 = transcode_misdeclared(body, result.get("encoding") or "windows-1252")
        if utf8 is not None:
            log.info("%s: bytes contradict the declared encoding; re-read as detected", base_url)
            response_headers["content-type"] = "application/xml; charset=utf-8"
            result = _feedparser(utf8, response_headers, base_url)
    result["entries_cut"] = cut
    if cut and result.entries:
        return result  # malformed because we cut it: not worth a log line
    if result.entries:
        if result.bozo:
            log.info("%s: recovered %d entries from a malformed feed: %s",
                     base_url, len(result.entries), result.get("bozo_exception"))
        return result
    if not result.version:
        reason = result.get("bozo_exception") or "no feed elements found"
        content_type = response_headers.get("content-type", "unknown content type")
        raise ParseError(excerpt(f"{base_url}: not a feed ({content_type}): {reason}"))
    if result.bozo:
        raise ParseError(excerpt(f"{base_url}: malformed {result.version} feed: {result.get('bozo_exception')}"))
    return result
