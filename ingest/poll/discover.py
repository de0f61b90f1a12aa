"""Feed discovery: the feeds an HTML page advertises with <link rel="alternate">. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import lxml.etree
import lxml.html

__all__ = ["FEED_TYPES", "DiscoveredFeed", "discover_feeds", "looks_like_html"]

FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/feed+json": "json",
    "application/json": "json",
    "application/rdf+xml": "rdf",
    "application/xml": "xml",
    "text/xml": "xml",
}


@dataclass(frozen=True)
class DiscoveredFeed:
    url: str  # absolute
    title: str
    kind: str  # rss, atom, json, rdf, xml


def looks_like_html(body: bytes, content_type: str) -> bool:
    """A page rather than a feed: by content type, else by its first tag."""
    if "html" in content_type.lower() and "xhtml+xml" not in content_type.lower():
        return True
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html"))


def discover_feeds(html: bytes, page_url: str) -> list[DiscoveredFeed]:
    """Feeds linked from the page's <head>, in page order, without duplicates."""
    try:
        doc = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    base = page_url
    base_el = doc.find(".//base[@href]")
    if base_el is not None:
        base = urljoin(page_url, base_el.get("href", ""))
    found: dict[str, DiscoveredFeed] = {}
    for link in doc.iter("link"):
        rel = {r.lower() for r in (link.get("rel") or "").split()}
        kind = FEED_TYPES.get((link.get("type") or "").split(";")[0].strip().lower())
        href = (link.get("href") or "").strip()
        if "alternate" not in rel or not kind or not href:
            continue
        url = urljoin(base, href)
        if url.startswith(("http://", "https://")) and url not in found:
            found[url] = DiscoveredFeed(url=url, title=(link.get("title") or "").strip(), kind=kind)
    return list(found.values())
