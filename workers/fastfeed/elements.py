"""The vocabulary: what feedparser's handler for each known element does, element by element.

Each handler reads one element (and its few known children) into the Reader
in document order. An element outside these tables is stored as text when
feedparser has no handler for it either (a plain leaf, e.g. <ttl>,
<slash:comments>), and otherwise declines the whole document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from feedparser.datetimes import _parse_date
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin

from workers.fastfeed.reader import (
    ATOM,
    HTML_TYPES,
    LANG,
    Decline,
    Reader,
    Rewalk,
    attributes,
    element_name,
    leaf_text,
    own_text,
)
from workers.fastfeed.skip import SkippedEntry

__all__ = ["ATOM_FEED", "FEED", "lang_of", "walk"]

Handler = Callable[[Reader, Any, str, int, "str | None"], None]
_LANG_ONLY = frozenset({"xml:lang"})
_NONE: frozenset[str] = frozenset()


def _title(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attrs = attributes(el, frozenset({"xml:lang", "type"}) if r.version == "atom10" else _LANG_ONLY)
    params = r.params(attrs, "text/plain", lang)
    value = r.store("title", leaf_text(el), depth, params)
    if value:
        r.title_depth = depth


def _text_construct(element: str, default: str) -> Handler:
    def handle(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
        r.once(name)
        attrs = attributes(el, frozenset({"xml:lang", "type"}) if r.version == "atom10" else _LANG_ONLY)
        r.store(element, leaf_text(el), depth, r.params(attrs, default, lang))
    return handle


def _description(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("summary")
    if "summary" in r.context() and not r.has_content:
        raise Decline("description after a summary")  # feedparser reads it as content
    r.store("description", leaf_text(el), depth, r.params(attributes(el, _LANG_ONLY), "text/html", lang))


def _summary(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("summary")
    if "summary" in r.context() and not r.has_content:
        raise Decline("summary after a summary")
    attrs = attributes(el, frozenset({"xml:lang", "type"}))
    r.store("summary", leaf_text(el), depth, r.params(attrs, "text/plain", lang))


def _content(default: str, allowed: frozenset[str]) -> Handler:
    def handle(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
        if r.entry is None:
            raise Decline("content outside an entry")
        r.once("content")
        r.has_content = True
        params = r.params(attributes(el, allowed), default, lang)
        value = r.store("content", leaf_text(el), depth, params)
        if params["type"] in ("text/plain", *HTML_TYPES):
            r.save("summary", value)
    return handle


def _link(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attrs: dict[str, Any] = attributes(el, frozenset({"rel", "type", "href", "hreflang", "title", "length"}))
    attrs.setdefault("rel", "alternate")
    attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
    context = r.context()
    if "href" in attrs:
        attrs["href"] = _urljoin("", attrs["href"])
    context.setdefault("links", [])
    context["links"].append(dict(attrs))
    if "href" in attrs:
        if attrs["rel"] == "alternate" and _FeedParserMixin.map_content_type(attrs["type"]) in HTML_TYPES:
            context["link"] = attrs["href"]
        if el.text and el.text.strip() or len(el):
            raise Decline("text in a link with href")
    else:
        r.store("link", leaf_text(el), depth)


def _guid(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attrs = attributes(el, frozenset({"ispermalink"}))
    r.guidislink = attrs.get("ispermalink", "true") == "true"
    value = r.store("id", leaf_text(el), depth)
    r.save("guidislink", r.guidislink and "link" not in r.context())
    if r.guidislink:
        r.save("link", value)


def _date(element: str) -> Handler:
    def handle(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
        attributes(el, _NONE)
        value = r.store(element, leaf_text(el), depth)
        r.save(element + "_parsed", _parse_date(value), overwrite=True)
    return handle


def _rss_author(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attributes(el, _NONE)
    r.context().setdefault("authors", []).append({})
    r.store("author", leaf_text(el), depth)
    r.sync_author()


def _atom_person(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attributes(el, _LANG_ONLY)
    r.context().setdefault("authors", []).append({})
    for child in el:
        if not isinstance(child.tag, str):
            continue
        part = element_name(child.tag)
        if part not in ("name", "email", "uri"):
            raise Decline(f"author {part}")
        attributes(child, _LANG_ONLY)
        text = leaf_text(child)
        if part == "uri":  # feedparser stores it as the entry's 'href' too, then the author's
            value = r.store("href", text, depth + 1)
            r.save_author("href", value)
        else:
            r.save_author(part, text.strip())
    r.store("author", own_text(el), depth)
    r.sync_author()


def _category(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attrs = attributes(el, frozenset({"term", "scheme", "domain", "label", "xml:lang"}))
    r.add_tag(attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
    value = r.value(leaf_text(el), "category", None)
    if not value:
        return
    tags = r.context()["tags"]
    if tags and not tags[-1]["term"]:
        tags[-1]["term"] = value
    else:
        r.add_tag(value, None, None)


def _enclosure(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attrs: dict[str, Any] = attributes(el, frozenset({"url", "type", "length"}))
    if len(el) or (el.text or "").strip():
        raise Decline("text in an enclosure")
    href = attrs.get("url")
    if href:  # feedparser's _enforce_href
        del attrs["url"]
        attrs["href"] = href
    attrs["rel"] = "enclosure"
    r.context().setdefault("links", []).append(dict(attrs))


def _source(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("source")
    attrs = attributes(el, frozenset({"url"}))
    source: dict[str, Any] = {}
    if "url" in attrs:
        source["href"] = attrs["url"]
    r.title_depth = -1
    value = r.store("source", leaf_text(el), depth)
    if value:
        source["title"] = value
    r.context()["source"] = source


def _media(key: str, allowed: frozenset[str]) -> Handler:
    def handle(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
        attrs = attributes(el, allowed)
        context = r.context()
        context.setdefault(key, [])
        if key == "media_thumbnail":  # feedparser pushes it as 'url' (stored as 'href')
            context[key].append(attrs)
            url = r.store("url", leaf_text(el), depth)
            if url.strip() and "url" not in context[key][-1]:
                context[key][-1]["url"] = url
            return
        if own_text(el).strip():
            raise Decline("text in media:content")
        context[key].append(attrs)
        for child in el:
            if isinstance(child.tag, str):
                _media_credit(r, child, depth + 1)
    return handle


def _media_credit(r: Reader, el: Any, depth: int) -> None:
    """<media:credit> inside <media:content>: kept in the entry's media_credit list, and
    (feedparser's generic storage) as its 'credit'."""
    if element_name(el.tag) != "media:credit":
        raise Decline(f"{element_name(el.tag)} in media:content")
    attrs = attributes(el, frozenset({"scheme", "role"}))
    context = r.context()
    context.setdefault("media_credit", []).append(attrs)
    credit = r.store("credit", leaf_text(el), depth)
    if credit.strip():
        context["media_credit"][-1]["content"] = credit


def _publisher(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("publisher")
    attributes(el, _NONE)
    r.store("publisher", leaf_text(el), depth)
    r.sync_author("publisher")


def _generator(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("generator")
    attrs: dict[str, Any] = attributes(el, frozenset({"uri", "version"}) if r.version == "atom10" else _NONE)
    href = attrs.get("uri")
    if href:  # feedparser's _enforce_href, then its resolve_uri
        del attrs["uri"]
        attrs["href"] = _urljoin("", href)
    context = r.context()
    context["generator_detail"] = dict(attrs)
    value = r.store("generator", leaf_text(el), depth)
    if "generator_detail" in context:
        context["generator_detail"]["name"] = value


def _language(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attributes(el, _NONE)
    r.store("language", leaf_text(el), depth)


def _image(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    if r.entry is not None:
        raise Decline("image in an entry")
    r.once("image")
    attributes(el, _NONE)
    r.feed.setdefault("image", {})
    r.in_image = True
    r.title_depth = -1
    single = r.single
    r.single = set()
    for child in el:
        if not isinstance(child.tag, str):
            continue
        part = element_name(child.tag)
        if part in ("url", "width", "height"):
            r.once(part)
            attributes(child, _NONE)
            text = leaf_text(child)
            if part == "url":
                r.store("href", text, depth + 1)
            else:
                try:
                    number = int(text.strip())
                except ValueError:
                    number = 0
                r.feed["image"][part] = number
        elif part in ("title", "link", "description"):
            _IMAGE_PARTS[part](r, child, part, depth + 1, lang)
        else:
            raise Decline(f"image {part}")
    r.in_image = False
    r.single = single


_IMAGE_PARTS: dict[str, Handler] = {"title": _title, "link": _link,
                                     "description": _text_construct("description", "text/html")}


def _generic(r: Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    """An element feedparser has no handler for: a plain text leaf is stored under its name."""
    key = name.replace(":", "_")
    attributes(el, _NONE)
    r.store(key, leaf_text(el), depth)


# Elements of an entry (RSS item, Atom entry) and of the feed (RSS channel, Atom feed).
_ENTRY: dict[str, Handler] = {
    "title": _title, "link": _link, "guid": _guid, "id": _guid,
    "pubdate": _date("published"), "published": _date("published"),
    "updated": _date("updated"), "dc:date": _date("updated"),
    "description": _description, "summary": _summary,
    "content:encoded": _content("text/html", _LANG_ONLY),
    "content": _content("text/plain", frozenset({"xml:lang", "type"})),
    "author": _rss_author, "dc:creator": _rss_author, "category": _category, "dc:subject": _category,
    "enclosure": _enclosure, "source": _source,
    "media:content": _media("media_content", frozenset(
        {"url", "type", "medium", "filesize", "width", "height", "duration", "bitrate",
         "framerate", "samplingrate", "channels", "expression", "isdefault", "lang"})),
    "media:thumbnail": _media("media_thumbnail", frozenset({"url", "width", "height", "time"})),
    "rights": _text_construct("rights", "text/plain"), "dc:rights": _text_construct("rights", "text/plain"),
}
_ATOM_ENTRY = {**_ENTRY, "author": _atom_person}
FEED: dict[str, Handler] = {
    "title": _title, "link": _link, "id": _guid,
    "description": _text_construct("description", "text/html"),
    "subtitle": _text_construct("subtitle", "text/plain"),
    "rights": _text_construct("rights", "text/plain"),
    "copyright": _text_construct("rights", "text/plain"), "dc:rights": _text_construct("rights", "text/plain"),
    "language": _language, "dc:language": _language,
    "pubdate": _date("published"), "lastbuilddate": _date("updated"), "updated": _date("updated"),
    "dc:date": _date("updated"), "managingeditor": _rss_author, "dc:creator": _rss_author,
    "category": _category, "image": _image, "webmaster": _publisher, "generator": _generator,
}
ATOM_FEED = {**FEED, "author": _atom_person}
# Names feedparser reads with a handler of its own: never stored as plain text here.
_ENTRY_NAMES = frozenset({"item", "entry"})


def _has_handler(name: str) -> bool:
    method = name.replace(":", "_")
    return hasattr(_FeedParserMixin, "_start_" + method) or hasattr(_FeedParserMixin, "_end_" + method)


def lang_of(el: Any, inherited: str | None) -> str | None:
    value = el.get(LANG)
    if value is None:
        return inherited
    return value or None


def walk(r: Reader, parent: Any, handlers: Mapping[str, Handler], depth: int, lang: str | None) -> None:
    for el in parent:
        tag = el.tag
        if not isinstance(tag, str):
            continue  # comments
        name = element_name(tag)
        handler = handlers.get(name)
        element_lang = lang_of(el, lang)
        if handler is not None:
            if r.skipped and r.entry is None:
                raise Rewalk(name)
            handler(r, el, name, depth, element_lang)
        elif name in _ENTRY_NAMES and r.entry is None and depth <= 3:
            if r.known is None:
                _entry(r, el, depth, element_lang)
            else:
                _entry_or_skip(r, el, depth, element_lang)
        elif _has_handler(name) or el.get(LANG) is not None:
            raise Decline(f"element {name}")
        else:
            if r.skipped and r.entry is None:
                raise Rewalk(name)
            _generic(r, el, name, depth, element_lang)


def _entry(r: Reader, el: Any, depth: int, lang: str | None) -> None:
    if (r.version == "atom10") != (el.tag == f"{{{ATOM}}}entry"):
        raise Decline("entry of the other format")
    attributes(el, _LANG_ONLY)
    entry: dict[str, Any] = {}
    r.entries.append(entry)
    r.entry, r.depths, r.guidislink, r.title_depth = entry, {}, False, -1
    feed_single, r.single = r.single, set()
    walk(r, el, _ATOM_ENTRY if r.version == "atom10" else _ENTRY, depth + 1, lang)
    r.entry, r.has_content, r.single = None, False, feed_single


def _entry_or_skip(r: Reader, el: Any, depth: int, lang: str | None) -> None:
    """An entry the caller knows by its raw key is not read (SkippedEntry); the others are.

    Which entries the caller knows never changes what is read: an entry is a function of
    its bytes and of the document's context, both in the key (workers/fastfeed/document.py).
    The entry's own checks (its format, its attributes) were passed when it was read."""
    raw = r.raw_key(el)
    r.raws.append(raw)
    known = r.known.get(raw) if r.known is not None else None
    if known is None:
        _entry(r, el, depth, lang)
        return
    if (r.version == "atom10") != (el.tag == f"{{{ATOM}}}entry"):
        raise Decline("entry of the other format")
    r.entries.append(SkippedEntry(raw, known))
    r.skipped = True
