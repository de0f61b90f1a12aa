"""What an article page says about itself: canonical URL, headline, dates, authors, publisher.

Read in order of trust: JSON-LD NewsArticle (typed, zoned dates), then Open
Graph and `article:` meta tags, then what is printed on the page (a "By
Yonhap" byline, a "Published : Jan. 16, 2020 - 21:21" dateline). The
pipeline uses a field only where the feed lacks it. Pure: bytes in, values out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import lxml.html
import orjson

from workers.htmlguard import defuse_attribute_floods_bytes
from workers.normalize.clean import plain_text
from workers.normalize.times import iso_utc, parse_date, zone_for_language

__all__ = ["PageMeta", "page_meta", "page_zone"]

_ARTICLE_TYPES = {"NewsArticle", "Article", "ReportageNewsArticle", "AnalysisNewsArticle", "BlogPosting",
                  "OpinionNewsArticle", "WebPage"}
_BYLINE = re.compile(r"^\s*By\s+(?P<names>[^\n|]{2,80}?)\s*(?=Published|Updated|Posted|\||$)",
                     re.IGNORECASE | re.MULTILINE)
_DATELINE = re.compile(
    r"(?P<kind>Published|Updated|Posted)\s*:?\s*(?P<month>[A-Z][a-z]{2,8})\.?\s+(?P<day>\d{1,2}),\s*"
    r"(?P<year>\d{4})\s*-?\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})"
)
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_SPLIT_NAMES = re.compile(r"\s*(?:,|\band\b|&)\s*")


@dataclass(frozen=True)
class PageMeta:
    """Metadata found on a page; empty values where the page says nothing."""

    canonical: str | None = None
    headline: str = ""
    published_at: str | None = None  # ISO 8601 UTC
    updated_at: str | None = None
    authors: list[str] = field(default_factory=list)
    publisher: str | None = None
    language: str | None = None


# Publishers on generic domains known to print local time without a zone.
_HOST_ZONES = {"koreaherald.com": "Asia/Seoul", "koreatimes.co.kr": "Asia/Seoul",
               "koreajoongangdaily.joins.com": "Asia/Seoul", "japantimes.co.jp": "Asia/Tokyo"}
_TLD_ZONES = {"kr": "Asia/Seoul", "jp": "Asia/Tokyo"}


def page_zone(url: str, language: str | None) -> tzinfo:
    """Zone of a naive printed date: KST on a .kr host or a Korean publisher on a generic
    domain (Korea Herald prints "Published : Jan. 16, 2020 - 21:21", KST without a zone),
    else the zone of the page's language (workers/normalize/times.py), else UTC."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for known, name in _HOST_ZONES.items():
        if host == known or host.endswith("." + known):
            return ZoneInfo(name)
    tld = _TLD_ZONES.get(host.rsplit(".", 1)[-1])
    return ZoneInfo(tld) if tld else zone_for_language(language)


def _json_ld_articles(doc: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, dict):
            kind = node.get("@type")
            kinds = kind if isinstance(kind, list) else [kind]
            if any(k in _ARTICLE_TYPES for k in kinds if isinstance(k, str)):
                found.append(node)
            walk(node.get("@graph"))

    for script in doc.xpath('//script[@type="application/ld+json"]'):
        try:
            walk(orjson.loads(script.text_content() or "null"))
        except orjson.JSONDecodeError:
            continue
    found.sort(key=lambda n: n.get("@type") == "WebPage")  # an article before a bare page
    return found


def _names(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    names: list[str] = []
    for v in values:
        name = v.get("name") if isinstance(v, dict) else v
        if isinstance(name, str) and plain_text(name):
            names.append(plain_text(name))
    return names


def _date(raw: Any, zone: tzinfo) -> str | None:
    return iso_utc(parse_date(raw, zone)) if isinstance(raw, str) and raw.strip() else None


def _meta(doc: Any, *names: str) -> str | None:
    for name in names:
        for node in doc.xpath(f'//meta[@property="{name}" or @name="{name}"]/@content'):
            if str(node).strip():
                return str(node).strip()
    return None


def _printed(text: str, zone: tzinfo) -> tuple[list[str], str | None, str | None]:
    """(authors, published, updated) printed above the body: "By Yonhap" + "Published : …"."""
    authors: list[str] = []
    byline = _BYLINE.search(text)
    if byline:
        authors = [n for n in _SPLIT_NAMES.split(byline.group("names").strip()) if n]
    dates: dict[str, str | None] = {}
    for match in _DATELINE.finditer(text):
        month = _MONTHS.get(match.group("month")[:3].lower())
        if not month:
            continue
        try:
            moment = datetime(int(match.group("year")), month, int(match.group("day")),
                              int(match.group("hour")), int(match.group("minute")), tzinfo=zone)
        except ValueError:
            continue
        dates.setdefault(match.group("kind").lower(), iso_utc(moment))
    return authors, dates.get("published") or dates.get("posted"), dates.get("updated")


def _head_text(doc: Any) -> str:
    """The text printed next to the headline (where bylines and datelines sit), one
    line per element, without the headline itself."""
    for h1 in doc.xpath("//h1")[:1]:
        parent = h1.getparent()
        if parent is not None:
            headline = {t.strip() for t in h1.itertext()}
            return "\n".join(t.strip() for t in parent.itertext() if t.strip() and t.strip() not in headline)
    return ""


def page_meta(html: bytes, url: str) -> PageMeta:
    """Everything the page declares or prints about the story; never raises on bad markup."""
    try:
        doc = lxml.html.document_fromstring(defuse_attribute_floods_bytes(html))
    except (ValueError, lxml.etree.ParserError):
        return PageMeta()
    language = (doc.get("lang") or "").strip() or None
    zone = page_zone(url, language)
    canonical = next((urljoin(url, str(h).strip()) for h in doc.xpath('//link[@rel="canonical"]/@href')
                      if str(h).strip()), None) or _meta(doc, "og:url")
    ld = _json_ld_articles(doc)
    article = ld[0] if ld else {}
    printed_authors, printed_published, printed_updated = _printed(_head_text(doc), zone)
    headline = (plain_text(article.get("headline")) if isinstance(article.get("headline"), str) else "") \
        or plain_text(_meta(doc, "og:title")) \
        or next((plain_text(lxml.html.tostring(h, encoding="unicode")) for h in doc.xpath("//h1")[:1]), "")
    publisher = _names(article.get("publisher"))
    return PageMeta(
        canonical=canonical,
        headline=headline,
        published_at=_date(article.get("datePublished"), zone)
        or _date(_meta(doc, "article:published_time"), zone) or printed_published,
        updated_at=_date(article.get("dateModified"), zone)
        or _date(_meta(doc, "article:modified_time"), zone) or printed_updated,
        authors=_names(article.get("author")) or _names(_meta(doc, "article:author", "author"))
        or printed_authors,
        publisher=(publisher[0] if publisher else None) or _meta(doc, "og:site_name"),
        language=language,
    )
