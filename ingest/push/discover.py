"""Where a feed announces its WebSub hub and its own (topic) URL. Pure.

WebSub §4: a publisher names the hub and the topic ("self") in HTTP `Link`
headers or in the document: `<link rel="hub">` in Atom, `<atom:link
rel="hub">` in RSS with the Atom namespace, `hubs` / `feed_url` in JSON Feed.
Headers win over the document (the spec's order). Only the head of an XML
document is read (up to its first entry or item): an entry's own links are
not the feed's, and the scan stays cheap on a 20 MB body.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import orjson

__all__ = ["Discovered", "discover_push", "document_links", "link_header_links"]

_HEAD_BYTES = 65_536
_LINK_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?link\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(rb"""([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_FIRST_ENTRY = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:entry|item)\b", re.IGNORECASE)
_HEADER_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s;,]+))""", re.IGNORECASE)


@dataclass(frozen=True)
class Discovered:
    """What one fetched document says about push."""

    hub: str = ""  # absolute http(s) URL of the (first) hub, "" = none announced
    self_url: str = ""  # absolute http(s) topic URL, "" = none announced


def _absolute(url: str, base: str) -> str:
    joined = urljoin(base, url.strip()) if base else url.strip()
    return joined if urlsplit(joined).scheme in ("http", "https") and urlsplit(joined).hostname else ""


def link_header_links(value: str) -> dict[str, str]:
    """`Link: <u>; rel="hub", <v>; rel="self"` -> {"hub": u, "self": v} (first of each)."""
    found: dict[str, str] = {}
    for match in _HEADER_LINK.finditer(value or ""):
        rel = _REL.search(match.group(2) or "")
        if not rel:
            continue
        for token in (rel.group(1) or rel.group(2) or rel.group(3) or "").lower().split():
            found.setdefault(token, match.group(1))
    return found


def _xml_links(body: bytes) -> dict[str, str]:
    head = body[:_HEAD_BYTES]
    first = _FIRST_ENTRY.search(head)
    if first:
        head = head[:first.start()]
    found: dict[str, str] = {}
    for tag in _LINK_TAG.finditer(head):
        attrs = {m.group(1).lower().split(b":")[-1]: (m.group(2) if m.group(2) is not None else m.group(3))
                 for m in _ATTR.finditer(tag.group(1))}
        href, rel = attrs.get(b"href"), attrs.get(b"rel")
        if not href or not rel:
            continue
        url = html.unescape(href.decode("utf-8", "replace"))
        for token in rel.decode("utf-8", "replace").lower().split():
            found.setdefault(token, url)
    return found


def _json_links(body: bytes) -> dict[str, str]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(doc, dict):
        return {}
    found: dict[str, str] = {}
    hubs = doc.get("hubs")
    if isinstance(hubs, list):
        for hub in hubs:
            if isinstance(hub, dict) and isinstance(hub.get("url"), str) and \
                    str(hub.get("type", "")).lower() in ("websub", "pubsubhubbub", ""):
                found["hub"] = hub["url"]
                break
    if isinstance(doc.get("feed_url"), str):
        found["self"] = doc["feed_url"]
    return found


def document_links(body: bytes) -> dict[str, str]:
    """rel -> href of the feed-level links of an XML or JSON Feed document."""
    start = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return _json_links(body) if start.startswith(b"{") else _xml_links(body)


def discover_push(headers: Mapping[str, str], body: bytes, base_url: str) -> Discovered:
    """The hub and topic of a fetched feed (`headers` with lower-case names)."""
    from_header = link_header_links(headers.get("link", ""))
    from_document = document_links(body)

    def pick(rel: str) -> str:
        for source in (from_header, from_document):
            if rel in source:
                url = _absolute(source[rel], base_url)
                if url:
                    return url
        return ""

    return Discovered(hub=pick("hub"), self_url=pick("self"))
