"""One feedparser entry -> one Item record. Pure: no I/O, no clock.

Every field follows the rules in docs/normalization.md; the helpers do
the work: workers/normalize/clean.py (sanitizing, text, mojibake), workers/normalize/times.py
(dates), workers/normalize/authors.py (authors, bylines, credits), workers/normalize/language.py,
ingest/urls.py. Clustering happens later, per document, in workers/clusters/sketch.py.

The record's contract is in docs/record.md. Two cheap functions
come before the expensive one: `entry_identity` (the item id) and
`entry_fingerprint` (a hash of the raw entry), so that an entry already seen
unchanged costs a hash and one Redis read, not a normalization.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping
from typing import Any

import orjson

from ingest.models import Enclosure, FeedSpec, Item, short_hash
from ingest.settings import Settings
from ingest.urls import absolute_url, canonical_url, http_url
from workers.normalize.authors import authors_of, source_of
from workers.normalize.clean import (
    dedupe_paragraphs,
    fix_mojibake,
    html_to_paragraphs,
    plain_text,
    sanitize_html,
)
from workers.normalize.language import detect_language, normalize_language_tag
from workers.normalize.times import entry_date, is_far_future, iso_utc, zone_for_language

__all__ = [
    "NormalizeOptions",
    "entry_fingerprint",
    "entry_identity",
    "entry_link",
    "normalize_entry",
    "with_version",
]


@dataclasses.dataclass(frozen=True)
class NormalizeOptions:
    """The settings normalization depends on (built once per worker from Settings)."""

    iframe_hosts: frozenset[str] = frozenset()  # hosts whose https iframes are kept

    @classmethod
    def from_settings(cls, settings: Settings) -> NormalizeOptions:
        hosts = (h.strip().lower() for h in settings.allowed_iframe_hosts.split(","))
        return cls(iframe_hosts=frozenset(h for h in hosts if h))


_DEFAULTS = NormalizeOptions()

_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a list (feedparser's lists of details, people, media)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def entry_identity(feed_id: str, entry: Mapping[str, Any], base_url: str) -> str:
    """Stable item id: feed id + guid, else canonical link, else title + date.

    Uses only the entry and the feed id, never the fetch, so every process on
    every machine computes the same id for the same entry.
    """
    guid = _text(entry.get("id"))
    if guid:
        key = "guid:" + guid
    else:
        link = canonical_url(_text(entry.get("link")), base_url)
        if link:
            key = "link:" + link
        else:
            date = _text(entry.get("published")) or _text(entry.get("updated"))
            key = "title:" + _text(entry.get("title")) + "\n" + date
    return short_hash(feed_id + "\n" + key)


def entry_fingerprint(entry: Mapping[str, Any]) -> str:
    """Hash of everything feedparser produced for the entry (~5 µs).

    Equal fingerprints mean normalization would give the same record, so
    the entry is skipped before any cleaning or language detection.
    """
    return short_hash(orjson.dumps(entry, default=repr, option=orjson.OPT_NON_STR_KEYS).decode())


def _resolved(href: Any, base_url: str) -> str | None:
    return http_url(absolute_url(_text(href), base_url))


def entry_link(entry: Mapping[str, Any], base_url: str) -> str | None:
    """The article's link: absolute http(s), else None.

    In order: the entry's link as feedparser chose it (unless it is only the id
    copied over, `guidislink`), an alternate link of an HTML type, an alternate of
    any other type (a PDF report is still the item's page), and last the id copied
    as link (an RSS guid that is a permalink). A link of any other scheme (an Atom
    `tag:` id, `javascript:`, `data:`) is never the link.
    """
    link = entry.get("link")
    id_as_link = bool(entry.get("guidislink")) and _text(link) == _text(entry.get("id"))
    if not id_as_link and (found := _resolved(link, base_url)):
        return found
    alternates = [d for d in _maps(entry.get("links")) if _text(d.get("rel")) in ("", "alternate")]
    html_first = sorted(alternates, key=lambda d: _text(d.get("type")) not in ("", *_HTML_TYPES))
    for detail in html_first:
        if found := _resolved(detail.get("href"), base_url):
            return found
    return _resolved(link, base_url) if id_as_link else None


def _pick_content(entry: Mapping[str, Any]) -> tuple[str, bool, str | None]:
    """(value, is_html, base) of the richest body: HTML content, other content, summary."""
    contents = _maps(entry.get("content"))
    for detail in contents:
        if detail.get("type") in _HTML_TYPES and _text(detail.get("value")):
            return detail["value"], True, _text(detail.get("base")) or None
    for detail in contents:
        if _text(detail.get("value")):
            return (detail["value"], detail.get("type") in _HTML_TYPES,
                    _text(detail.get("base")) or None)
    detail = _map(entry.get("summary_detail"))
    is_html = detail.get("type", "text/html") in _HTML_TYPES
    return _text(entry.get("summary")), is_html, _text(detail.get("base")) or None


def _categories(entry: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for tag in _maps(entry.get("tags")):
        term = plain_text(_text(tag.get("term")) or _text(tag.get("label")))
        if term and term not in out:
            out.append(term)
    return out


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < 2**63 else None  # 10^30 is no length; JSON can't carry it


def _enclosure_links(entry: Mapping[str, Any]) -> Any:
    """feedparser's `enclosures` alias, for plain dicts too: the links of rel "enclosure",
    or None when a link has no rel (the alias's KeyError); without links, the entry's own
    `enclosures` (a JSON Feed entry; None for feedparser's dicts). The fast XML reader
    gives plain dicts (#21), so the alias is taken here, alike for every parser."""
    links = entry.get("links")
    if links is None:
        return entry.get("enclosures")
    try:
        return [link for link in links if link["rel"] == "enclosure"]
    except KeyError:
        return None


def _enclosures(entry: Mapping[str, Any], base: str) -> list[Enclosure]:
    found: dict[str, Enclosure] = {}
    candidates: list[tuple[Any, Any, Any]] = []
    for enc in _maps(_enclosure_links(entry)):
        candidates.append((enc.get("href") or enc.get("url"), enc.get("type"), enc.get("length")))
    for media in _maps(entry.get("media_content")):
        candidates.append((media.get("url"), media.get("type"), media.get("filesize")))
    for thumb in _maps(entry.get("media_thumbnail")):
        candidates.append((thumb.get("url"), None, None))
    for href, mime, length in candidates:
        url = http_url(absolute_url(_text(href), base))
        if not url or url in found:  # no URL, a repeat, or not http(s): dropped
            continue
        found[url] = Enclosure(url=url, type=_text(mime) or None, length=_int_or_none(length))
    return list(found.values())


def declared_language(entry: Mapping[str, Any], feed: Mapping[str, Any]) -> str | None:
    """xml:lang / JSON Feed language of the entry's parts, else the feed's language."""
    for detail_key in ("content", "title_detail", "summary_detail"):
        detail = entry.get(detail_key)
        if isinstance(detail, list):
            detail = detail[0] if detail else None
        if isinstance(detail, Mapping):
            tag = normalize_language_tag(_text(detail.get("language")))
            if tag:
                return tag
    return normalize_language_tag(_text(feed.get("language")))


def _dates(entry: Mapping[str, Any], language: str | None) -> tuple[Any, Any]:
    """(published, updated) as UTC datetimes; published falls back on the only date given."""
    zone = zone_for_language(language)
    # A plain dict's get: feedparser's own .get("updated") answers with the *published*
    # date when there is no update date (a deprecated alias), which would invent one.
    own = dict(entry.items()) if isinstance(entry, dict) and type(entry) is not dict else entry
    updated = entry_date(own.get("updated"), own.get("updated_parsed"), zone)
    published = entry_date(entry.get("published"), entry.get("published_parsed"), zone)
    return published or updated, updated


def _body(
    entry: Mapping[str, Any], link: str | None, base_url: str, options: NormalizeOptions
) -> tuple[str, list[str], str, str | None]:
    """(content_html, paragraphs, feed base, html_source): sanitized HTML and its unique
    paragraphs, the base for the entry's own media URLs (xml:base, else the document),
    and the body as the feed gave it when it was read as HTML (else None).

    Relative links resolve against the xml:base in force when the feed declares
    one, else against the article's own link: feed bodies are copied from the
    article page, whose relative images ("skins/x.gif") live next to it, not next
    to the feed document. (feedparser reports a base only for a declared
    xml:base, as workers/parse.py gives it no content-location.)
    """
    body, is_html, content_base = _pick_content(entry)
    html_source = _text(body) if is_html else None
    body = fix_mojibake(_text(body))
    declared = absolute_url(content_base, base_url) if content_base else None
    base = declared or link or base_url
    if is_html:
        content_html = sanitize_html(body, base, options.iframe_hosts)
        paragraphs = dedupe_paragraphs(html_to_paragraphs(content_html))
    else:
        # Plain text: blank lines end paragraphs; the HTML form is built from them.
        paragraphs = dedupe_paragraphs(html_to_paragraphs(html.escape(body, quote=False)))
        content_html = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return content_html, paragraphs, declared or base_url, html_source


def normalize_entry(
    entry: Mapping[str, Any],
    feed: Mapping[str, Any],
    spec: FeedSpec,
    base_url: str,
    fetched_at: str,
    options: NormalizeOptions = _DEFAULTS,
) -> Item:
    """The item record of one entry, with version 0 (delivery assigns the real one).

    `feed` is feedparser's feed-level dict, `base_url` the URL the document was
    fetched from after redirects. Never raises on anything feedparser produces
    (property-tested); the pipeline still isolates each entry.
    """
    link = entry_link(entry, base_url)
    content_html, paragraphs, media_base, html_source = _body(entry, link, base_url, options)
    content_text = "\n\n".join(paragraphs)
    title = plain_text(fix_mojibake(_text(entry.get("title"))))
    raw_summary = _text(entry.get("summary"))
    if html_source is not None and html_source == raw_summary:
        # The summary is the body (an RSS description, or the copy feedparser makes of
        # an Atom entry's only content): its text is the sanitized body's, parsed once.
        summary = " ".join(paragraphs)
    else:
        summary = " ".join(dedupe_paragraphs(html_to_paragraphs(fix_mojibake(raw_summary))))
    text = content_text or summary
    language = declared_language(entry, feed) or detect_language(f"{title}\n{text}")
    published, updated = _dates(entry, language)
    item_id = entry_identity(spec.feed_id, entry, base_url)
    return Item(
        id=item_id,
        version=0,
        feed_id=spec.feed_id,
        feed_url=spec.url,
        feed_title=plain_text(fix_mojibake(_text(feed.get("title")))) or spec.title,
        url=http_url(canonical_url(link)),
        link=link,
        guid=_text(entry.get("id")) or None,
        title=title,
        authors=authors_of(entry, feed, paragraphs or [summary]),
        published_at=iso_utc(published),
        updated_at=iso_utc(updated),
        fetched_at=fetched_at,
        summary=summary,
        content_html=content_html,
        content_text=content_text,
        language=language,
        categories=_categories(entry),
        enclosures=_enclosures(entry, media_base),
        content_hash=short_hash(f"{title}\n{text}"),
        cluster_id=item_id,
        source=source_of(entry, paragraphs or [summary]),
        date_in_future=is_far_future(published, fetched_at) or is_far_future(updated, fetched_at),
    )


def with_version(item: Item, version: int) -> Item:
    return dataclasses.replace(item, version=version)
