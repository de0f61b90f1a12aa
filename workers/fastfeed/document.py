"""Bytes -> feedparser's result through the fast reader, or None: the checks around the walk.

The encoding is decided by feedparser's own convert_to_utf8 (the same bytes
reach lxml as would reach expat); anything that makes feedparser guess, a
DOCTYPE or entity declaration, a namespace trick, another root, or no entry
at all, ends in None.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import lxml.etree as etree
from feedparser.encodings import CharacterEncodingOverride, CharacterEncodingUnknown, convert_to_utf8
from feedparser.mixin import _FeedParserMixin
from feedparser.util import FeedParserDict

from workers.fastfeed.elements import ATOM_FEED, FEED, lang_of, walk
from workers.fastfeed.reader import ATOM, PREFIXES, Decline, Reader, Rewalk, attributes
from workers.fastfeed.skip import KnownEntries

__all__ = ["parse_fast"]

log = logging.getLogger(__name__)

_VERSION_URIS = (b"http://purl.org/rss/1.0/", b"http://my.netscape.com/rdf/simple/0.9/")
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_FIRST_ELEMENT = re.compile(rb"<\w")
_DECLARATIONS = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_NS_DECLARATION = re.compile(rb"""xmlns(?::([\w.-]+))?\s*=\s*["']([^"']*)["']""")
_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                       huge_tree=False, recover=False, collect_ids=False)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(**_PARSER_OPTIONS)




def _check_namespaces(data: bytes) -> None:
    """Refuse declarations that would make feedparser name elements otherwise than element_name():
    RSS 1.0/0.9 (they change the version), and a prefix this reader relies on ('dc', ...)
    bound to another namespace feedparser knows (feedparser then renames the real ones)."""
    for prefix, uri in _NS_DECLARATION.findall(data):
        lowered = uri.lower()
        if lowered in _VERSION_URIS or b"backend.userland.com/rss" in lowered:
            raise Decline("RSS 1.0 / 0.9 / userland namespace")
        known = _KNOWN_URIS.get(lowered.decode("utf-8", "replace"))
        name = prefix.decode("utf-8", "replace")
        if name in _OWN_PREFIXES and known is not None and known != name:
            raise Decline(f"prefix {name} bound to {uri!r}")


_KNOWN_URIS = {k.lower(): v for k, v in _FeedParserMixin.namespaces.items()}
_OWN_PREFIXES = frozenset(p for p in PREFIXES.values() if p)


def parse_fast(body: bytes, response_headers: Mapping[str, str],
               known: KnownEntries | None = None) -> FeedParserDict | None:
    """feedparser's result for `body`, or None when feedparser must read it.

    `response_headers` are the lower-cased headers workers/parse.py hands
    feedparser (without content-location). Only well-formed documents with
    at least one entry are read here. With `known`, `result["entry_raws"]`
    lists every entry's raw key in order, and an entry whose key is in
    `known.values` is a SkippedEntry.
    """
    if "content-language" in response_headers or "content-location" in response_headers:
        return None
    try:
        return _parse(body, dict(response_headers), known)
    except (Decline, etree.LxmlError):
        return None
    except Exception:  # a mistake of this reader must never cost a document: feedparser reads it
        log.warning("fast feed reader failed; feedparser reads the document", exc_info=True)
        return None


def _context(salt: bytes, version: str, parent: Any, lang: str | None) -> bytes:
    """What an entry's reading depends on besides its own bytes: the caller's salt, the
    format, the language it inherits and the namespaces in scope (an entry element is always
    a child of `parent`, the channel or the feed). The element's serialization carries the
    declarations it uses, but a prefix's binding changes the names this reader gives."""
    namespaces = sorted((k or "", v) for k, v in parent.nsmap.items())
    return b"\x00".join([salt, version.encode(), (lang or "").encode(), repr(namespaces).encode(), b""])


def _reader(version: str, known: KnownEntries | None, parent: Any, lang: str | None,
            skip: bool = True) -> Reader:
    if known is None:
        reader = Reader(version)
    else:  # without `skip`: every entry read, still keyed (for the caller to remember)
        reader = Reader(version, known.values if skip else {}, _context(known.salt, version, parent, lang))
    if lang:
        reader.feed["language"] = lang.replace("_", "-")
    return reader


def _walk(version: str, known: KnownEntries | None, parent: Any, handlers: Any, depth: int,
          lang: str | None) -> Reader:
    """The walk; once more without skipping when a skipped entry is followed by a feed element."""
    reader = _reader(version, known, parent, lang)
    try:
        walk(reader, parent, handlers, depth, lang)
    except Rewalk:
        reader = _reader(version, known, parent, lang, skip=False)
        walk(reader, parent, handlers, depth, lang)
    return reader


def _parse(body: bytes, headers: dict[str, str], known: KnownEntries | None = None) -> FeedParserDict | None:
    # feedparser's result object (workers/parse.py reads `result.entries`), its feed and
    # entries plain dicts (workers/fastfeed/reader.py says why)
    result = FeedParserDict(bozo=False, entries=[], feed={}, headers=dict(headers))
    data = convert_to_utf8(headers, body, result)
    if isinstance(result.get("bozo_exception"), (CharacterEncodingOverride, CharacterEncodingUnknown)):
        return None
    first = _FIRST_ELEMENT.search(data)
    if first is None or _DECLARATIONS.search(data, 0, first.start()):
        return None
    _check_namespaces(data)
    root = etree.fromstring(data, _parser())  # a parser per document: lxml's are not thread-safe
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.xml_version != "1.0":
        return None
    lang = lang_of(root, None)
    if root.tag == "rss":
        version = attributes(root, frozenset({"version", "xml:lang"})).get("version", "")
        name = _RSS_VERSIONS.get(version) or ("rss20" if version.startswith("2.") else "rss")
        channels = [c for c in root if isinstance(c.tag, str)]
        if len(channels) != 1 or channels[0].tag != "channel":
            return None
        attributes(channels[0], frozenset())
        parent, handlers, depth = channels[0], FEED, 3
    elif root.tag == f"{{{ATOM}}}feed":
        name = "atom10"
        attributes(root, frozenset({"xml:lang"}))
        parent, handlers, depth = root, ATOM_FEED, 2
    else:
        return None
    reader = _walk(name, known, parent, handlers, depth, lang)
    if not reader.entries:
        return None  # an empty feed: feedparser's verdict decides what it is
    result["feed"] = reader.feed
    result["entries"] = reader.entries
    result["version"] = reader.version
    result["namespaces"] = {}
    if known is not None:
        result["entry_raws"] = reader.raws
    return result
