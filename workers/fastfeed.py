"""Well-formed RSS 2.0 / Atom 1.0 -> feedparser's own result, without feedparser's SAX handlers.

feedparser drives expat through xml.sax and a Python handler per event: the
escaped HTML of a news item alone is ~70 handler calls, 0.7-0.9 ms per entry
of the benchmark farm (#9). Here lxml builds the tree in C and each element of
a small, known vocabulary is read the way feedparser's handler for it would
read it (`feedparser/mixin.py` `pop()` and `namespaces/_base.py`), in document
order, into the same `FeedParserDict`s with the same keys in the same order.
So the entry fingerprint (an orjson hash of the entry, key order included),
every `.get()` alias (`enclosures` from `links`, `updated` falling back on
`published`) and every record are the ones feedparser gives. The values are
decided by feedparser's own helpers: `_parse_date`, `looks_like_html`,
`_urljoin`, its cp1252 table and its double-encoded-UTF-8 repair.

The reader is deliberately narrow and says no (returns None, and
workers/parse.py asks feedparser) to anything it is not sure of: a DOCTYPE or
entity declaration, lxml's slightest complaint, an encoding feedparser would
have to guess, RSS 1.0/RDF, Atom 0.3, xml:base, an element or attribute
outside the vocabulary below (unless feedparser has no handler for it and it
is a plain text leaf, which feedparser stores under its own name), markup
inside a text element, a repeated single-valued element, an empty document.

It is never less safe than feedparser: it runs after the same guards
(workers/xmlguard.py), lxml is told to resolve no entity, load no DTD and
touch no network, and lxml's own limits (no huge trees) end in a fallback.
The differential tests (tests/test_fastfeed.py) hold it to feedparser's
output on every fixture, the benchmark farm and generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import lxml.etree as etree
from feedparser.datetimes import _parse_date
from feedparser.encodings import CharacterEncodingOverride, CharacterEncodingUnknown, convert_to_utf8
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin
from feedparser.util import FeedParserDict

__all__ = ["parse_fast"]

ATOM = "http://www.w3.org/2005/Atom"
_XML = "http://www.w3.org/XML/1998/namespace"
_LANG = f"{{{_XML}}}lang"
# feedparser's prefix for each namespace URI the vocabulary uses ('' = the feed's own).
_PREFIXES = {ATOM: "", "http://purl.org/rss/1.0/modules/content/": "content",
             "http://purl.org/dc/elements/1.1/": "dc", "http://search.yahoo.com/mrss/": "media",
             "http://search.yahoo.com/mrss": "media", "http://purl.org/rss/1.0/modules/syndication/": "sy",
             "http://purl.org/rss/1.0/modules/slash/": "slash", "http://wellformedweb.org/CommentAPI/": "wfw",
             "http://rssnamespace.org/feedburner/ext/1.0": "feedburner"}
# Namespaces whose presence changes feedparser's idea of the version, or maps to RSS 1.0/0.9.
_VERSION_URIS = (b"purl.org/rss/1.0/", b"my.netscape.com/rdf/simple/0.9/")
_CAN_BE_RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
_HTML_TYPES = frozenset(_FeedParserMixin.html_types)
_CONTENT_TYPES = {"text": "text/plain", "html": "text/html", "text/plain": "text/plain",
                  "text/html": "text/html"}
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_FIRST_ELEMENT = re.compile(rb"<\w")
_DECLARATIONS = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_NS_DECLARATION = re.compile(rb"""xmlns(?::([\w.-]+))?\s*=\s*["']([^"']*)["']""")
_LINK_REFS = re.compile("&([A-Za-z0-9_]+);")
_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                       huge_tree=False, recover=False, collect_ids=False)


class Decline(Exception):
    """The document is outside what this reader is sure of: feedparser reads it."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(**_PARSER_OPTIONS)


_PARSER = _parser()


def _repaired(output: str) -> str:
    """feedparser's last steps on element text: undo UTF-8 read as Latin-1, map cp1252."""
    try:
        output = output.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return output.translate(_cp1252)


def _name(tag: str) -> str:
    """feedparser's name for an element: 'title', 'dc:creator', ... or Decline."""
    if tag[0] != "{":
        return tag.lower()
    uri, local = tag[1:].split("}", 1)
    prefix = _PREFIXES.get(uri)
    if prefix is None:
        raise Decline(f"namespace {uri}")
    return f"{prefix}:{local.lower()}" if prefix else local.lower()


def _attrs(el: Any, allowed: frozenset[str]) -> dict[str, str]:
    """The element's attributes as feedparser's handlers see them (keys lowered,
    rel/type values lowered), refusing any outside `allowed`."""
    out: dict[str, str] = {}
    for key, value in el.attrib.items():
        key = "xml:lang" if key == _LANG else key.lower()
        if key not in allowed or key in out:
            raise Decline(f"attribute {key}")
        out[key] = value.lower() if key in ("rel", "type") else value
    return out


def _leaf_text(el: Any) -> str:
    if len(el):
        raise Decline(f"markup inside {el.tag}")
    return el.text or ""


def _own_text(el: Any) -> str:
    return (el.text or "") + "".join(child.tail or "" for child in el)


class _Reader:
    """One document's walk; the state feedparser keeps across elements, and no more."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.feed = FeedParserDict()
        self.entries: list[FeedParserDict] = []
        self.entry: FeedParserDict | None = None
        self.depths: dict[str, int] = {}
        self.title_depth = -1
        self.has_content = False
        self.guidislink = False
        self.in_image = False
        self.single: set[str] = set()

    # --- feedparser's pop(): the value of a text element, and where it is stored
    def context(self) -> FeedParserDict:
        if self.in_image and "image" in self.feed:
            return self.feed["image"]
        return self.entry if self.entry is not None else self.feed

    def value(self, raw: str, element: str, params: FeedParserDict | None) -> str:
        output = raw.strip()
        if element in _CAN_BE_RELATIVE and output and (element != "id" or self.guidislink):
            output = _urljoin("", output)
        if (params is not None and not self.version.startswith("atom")
                and params.get("type") == "text/plain" and _FeedParserMixin.looks_like_html(output)):
            params["type"] = "text/html"
        return _repaired(output)

    def store(self, element: str, raw: str, depth: int, params: FeedParserDict | None = None) -> str:
        output = self.value(raw, element, params)
        if element == "title" and -1 < self.title_depth <= depth:
            return output
        if self.entry is not None:
            entry = self.entry
            if element == "content":
                detail = FeedParserDict(params or {})
                detail["value"] = output
                entry.setdefault("content", []).append(detail)
            elif element == "link":
                if not self.in_image:
                    output = _LINK_REFS.sub(r"&\g<1>", output.replace("&amp;", "&"))
                    entry["link"] = output
                    if output:
                        entry["links"][-1]["href"] = output
            else:
                key = "summary" if element == "description" else element
                old = self.depths.get(key)
                if old is None or depth <= old:
                    self.depths[key] = depth
                    entry[key] = output
                if params is not None:
                    detail = FeedParserDict(params)
                    detail["value"] = output
                    entry[key + "_detail"] = detail
        else:
            context = self.context()
            key = "subtitle" if element == "description" else element
            context[key] = output
            if key == "link":
                output = _LINK_REFS.sub(r"&\g<1>", output)
                context["link"] = output
                context["links"][-1]["href"] = output
            elif params is not None:
                detail = FeedParserDict(params)
                detail["value"] = output
                context[key + "_detail"] = detail
        return output

    def once(self, name: str) -> None:
        """Refuse a second copy of a single-valued element in one entry or feed."""
        if name in self.single:
            raise Decline(f"repeated {name}")
        self.single.add(name)

    def save(self, key: str, value: Any, overwrite: bool = False) -> None:
        context = self.context()
        if overwrite:
            context[key] = value
        else:
            context.setdefault(key, value)

    # --- text constructs (push_content)
    def params(self, attrs: Mapping[str, str], default: str, lang: str | None) -> FeedParserDict:
        kind = attrs.get("type", default)
        mapped = _CONTENT_TYPES.get(kind)
        if mapped is None:
            raise Decline(f"content type {kind}")
        return FeedParserDict(type=mapped, language=lang.replace("_", "-") if lang else None, base="")

    # --- authors (feedparser's _sync_author_detail, verbatim in effect)
    def sync_author(self, key: str = "author") -> None:
        context = self.context()
        detail = context.get(key + "s", [FeedParserDict()])[-1]
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                context[key] = f"{name} ({email})"
            elif name:
                context[key] = name
            elif email:
                context[key] = email
            return
        author, email = context.get(key), None
        if not author:
            return
        match = _EMAIL.search(author)
        if match:
            email = match.group(0)
            author = author.replace(email, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "")
            author = author.strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author or email:
            context.setdefault(key + "_detail", detail)
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email

    def save_author(self, key: str, value: str) -> None:
        context = self.context()
        context.setdefault("author_detail", FeedParserDict())
        context["author_detail"][key] = value
        self.sync_author()
        context.setdefault("authors", [FeedParserDict()])
        context["authors"][-1][key] = value

    def add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        tags = self.context().setdefault("tags", [])
        if not term and not scheme and not label:
            return
        value = FeedParserDict(term=term, scheme=scheme, label=label)
        if value not in tags:
            tags.append(value)


_EMAIL = re.compile(r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?""")  # noqa: E501  feedparser's own

Handler = Callable[[_Reader, Any, str, int, "str | None"], None]
_LANG_ONLY = frozenset({"xml:lang"})
_NONE: frozenset[str] = frozenset()


def _title(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once(name)
    attrs = _attrs(el, frozenset({"xml:lang", "type"}) if r.version == "atom10" else _LANG_ONLY)
    params = r.params(attrs, "text/plain", lang)
    value = r.store("title", _leaf_text(el), depth, params)
    if value:
        r.title_depth = depth


def _text_construct(element: str, default: str) -> Handler:
    def handle(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
        r.once(name)
        attrs = _attrs(el, frozenset({"xml:lang", "type"}) if r.version == "atom10" else _LANG_ONLY)
        r.store(element, _leaf_text(el), depth, r.params(attrs, default, lang))
    return handle


def _description(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("summary")
    if "summary" in r.context() and not r.has_content:
        raise Decline("description after a summary")  # feedparser reads it as content
    r.store("description", _leaf_text(el), depth, r.params(_attrs(el, _LANG_ONLY), "text/html", lang))


def _summary(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("summary")
    if "summary" in r.context() and not r.has_content:
        raise Decline("summary after a summary")
    attrs = _attrs(el, frozenset({"xml:lang", "type"}))
    r.store("summary", _leaf_text(el), depth, r.params(attrs, "text/plain", lang))


def _content(default: str, allowed: frozenset[str]) -> Handler:
    def handle(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
        if r.entry is None:
            raise Decline("content outside an entry")
        r.once("content")
        r.has_content = True
        params = r.params(_attrs(el, allowed), default, lang)
        value = r.store("content", _leaf_text(el), depth, params)
        if params["type"] in ("text/plain", *_HTML_TYPES):
            r.save("summary", value)
    return handle


def _link(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attrs: dict[str, Any] = _attrs(el, frozenset({"rel", "type", "href", "hreflang", "title", "length"}))
    attrs.setdefault("rel", "alternate")
    attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
    context = r.context()
    if "href" in attrs:
        attrs["href"] = _urljoin("", attrs["href"])
    context.setdefault("links", [])
    context["links"].append(FeedParserDict(attrs))
    if "href" in attrs:
        if attrs["rel"] == "alternate" and _FeedParserMixin.map_content_type(attrs["type"]) in _HTML_TYPES:
            context["link"] = attrs["href"]
        if el.text and el.text.strip() or len(el):
            raise Decline("text in a link with href")
    else:
        r.store("link", _leaf_text(el), depth)


def _guid(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("id")
    attrs = _attrs(el, frozenset({"ispermalink"}))
    r.guidislink = attrs.get("ispermalink", "true") == "true"
    value = r.store("id", _leaf_text(el), depth)
    r.save("guidislink", r.guidislink and "link" not in r.context())
    if r.guidislink:
        r.save("link", value)


def _date(element: str) -> Handler:
    def handle(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
        r.once(element)
        _attrs(el, _NONE)
        value = r.store(element, _leaf_text(el), depth)
        r.save(element + "_parsed", _parse_date(value), overwrite=True)
    return handle


def _rss_author(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    _attrs(el, _NONE)
    r.context().setdefault("authors", []).append(FeedParserDict())
    r.store("author", _leaf_text(el), depth)
    r.sync_author()


def _atom_person(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    _attrs(el, _LANG_ONLY)
    r.context().setdefault("authors", []).append(FeedParserDict())
    for child in el:
        if not isinstance(child.tag, str):
            continue
        part = _name(child.tag)
        if part not in ("name", "email", "uri"):
            raise Decline(f"author {part}")
        _attrs(child, _LANG_ONLY)
        text = _leaf_text(child)
        if part == "uri":  # feedparser stores it as the entry's 'href' too, then the author's
            value = r.store("href", text, depth + 1)
            r.save_author("href", value)
        else:
            r.save_author(part, text.strip())
    r.store("author", _own_text(el), depth)
    r.sync_author()


def _category(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attrs = _attrs(el, frozenset({"term", "scheme", "domain", "label", "xml:lang"}))
    r.add_tag(attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
    value = r.value(_leaf_text(el), "category", None)
    if not value:
        return
    tags = r.context()["tags"]
    if tags and not tags[-1]["term"]:
        tags[-1]["term"] = value
    else:
        r.add_tag(value, None, None)


def _enclosure(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    attrs: dict[str, Any] = _attrs(el, frozenset({"url", "type", "length"}))
    if len(el) or (el.text or "").strip():
        raise Decline("text in an enclosure")
    href = attrs.get("url")
    if href:  # feedparser's _enforce_href
        del attrs["url"]
        attrs["href"] = href
    attrs["rel"] = "enclosure"
    r.context().setdefault("links", []).append(FeedParserDict(attrs))


def _source(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("source")
    attrs = _attrs(el, frozenset({"url"}))
    source = FeedParserDict()
    if "url" in attrs:
        source["href"] = attrs["url"]
    r.title_depth = -1
    value = r.store("source", _leaf_text(el), depth)
    if value:
        source["title"] = value
    r.context()["source"] = source


def _media(key: str, allowed: frozenset[str]) -> Handler:
    def handle(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
        attrs = _attrs(el, allowed)
        text = _leaf_text(el)
        context = r.context()
        context.setdefault(key, [])
        if key == "media_thumbnail":  # feedparser pushes it as 'url' (stored as 'href')
            context[key].append(attrs)
            url = r.store("url", text, depth)
            if url.strip() and "url" not in context[key][-1]:
                context[key][-1]["url"] = url
        else:
            if text.strip():
                raise Decline("text in media:content")
            context[key].append(attrs)
    return handle


def _feed_author(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once(name)
    _rss_author(r, el, name, depth, lang)


def _publisher(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("publisher")
    _attrs(el, _NONE)
    r.store("publisher", _leaf_text(el), depth)
    r.sync_author("publisher")


def _generator(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("generator")
    attrs: dict[str, Any] = _attrs(el, frozenset({"uri", "version"}) if r.version == "atom10" else _NONE)
    href = attrs.get("uri")
    if href:  # feedparser's _enforce_href, then its resolve_uri
        del attrs["uri"]
        attrs["href"] = _urljoin("", href)
    context = r.context()
    context["generator_detail"] = FeedParserDict(attrs)
    value = r.store("generator", _leaf_text(el), depth)
    if "generator_detail" in context:
        context["generator_detail"]["name"] = value


def _language(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    r.once("language")
    _attrs(el, _NONE)
    r.store("language", _leaf_text(el), depth)


def _image(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    if r.entry is not None:
        raise Decline("image in an entry")
    r.once("image")
    _attrs(el, _NONE)
    r.feed.setdefault("image", FeedParserDict())
    r.in_image = True
    r.title_depth = -1
    single = r.single
    r.single = set()
    for child in el:
        if not isinstance(child.tag, str):
            continue
        part = _name(child.tag)
        if part in ("url", "width", "height"):
            r.once(part)
            _attrs(child, _NONE)
            text = _leaf_text(child)
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


def _generic(r: _Reader, el: Any, name: str, depth: int, lang: str | None) -> None:
    """An element feedparser has no handler for: a plain text leaf is stored under its name."""
    key = name.replace(":", "_")
    r.once(key)
    _attrs(el, _NONE)
    r.store(key, _leaf_text(el), depth)


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
    "rights": _text_construct("rights", "text/plain"),
}
_ATOM_ENTRY = {**_ENTRY, "author": _atom_person}
_FEED: dict[str, Handler] = {
    "title": _title, "link": _link, "id": _guid,
    "description": _text_construct("description", "text/html"),
    "subtitle": _text_construct("subtitle", "text/plain"),
    "rights": _text_construct("rights", "text/plain"),
    "copyright": _text_construct("rights", "text/plain"),
    "language": _language, "dc:language": _language,
    "pubdate": _date("published"), "lastbuilddate": _date("updated"), "updated": _date("updated"),
    "dc:date": _date("updated"), "managingeditor": _feed_author, "dc:creator": _feed_author,
    "category": _category, "image": _image, "webmaster": _publisher, "generator": _generator,
}
_ATOM_FEED = {**_FEED, "author": _atom_person}
# Names feedparser reads with a handler of its own: never stored as plain text here.
_ENTRY_NAMES = frozenset({"item", "entry"})


def _has_handler(name: str) -> bool:
    method = name.replace(":", "_")
    return hasattr(_FeedParserMixin, "_start_" + method) or hasattr(_FeedParserMixin, "_end_" + method)


def _lang_of(el: Any, inherited: str | None) -> str | None:
    value = el.get(_LANG)
    if value is None:
        return inherited
    return value or None


def _walk(r: _Reader, parent: Any, handlers: Mapping[str, Handler], depth: int, lang: str | None) -> None:
    for el in parent:
        tag = el.tag
        if not isinstance(tag, str):
            continue  # comments
        name = _name(tag)
        handler = handlers.get(name)
        element_lang = _lang_of(el, lang)
        if handler is not None:
            handler(r, el, name, depth, element_lang)
        elif name in _ENTRY_NAMES and r.entry is None and depth <= 3:
            _entry(r, el, depth, element_lang)
        elif _has_handler(name) or el.get(_LANG) is not None:
            raise Decline(f"element {name}")
        else:
            _generic(r, el, name, depth, element_lang)


def _entry(r: _Reader, el: Any, depth: int, lang: str | None) -> None:
    if (r.version == "atom10") != (el.tag == f"{{{ATOM}}}entry"):
        raise Decline("entry of the other format")
    _attrs(el, _LANG_ONLY)
    entry = FeedParserDict()
    r.entries.append(entry)
    r.entry, r.depths, r.guidislink, r.title_depth = entry, {}, False, -1
    feed_single, r.single = r.single, set()
    _walk(r, el, _ATOM_ENTRY if r.version == "atom10" else _ENTRY, depth + 1, lang)
    r.entry, r.has_content, r.single = None, False, feed_single


def _check_namespaces(data: bytes) -> None:
    """Refuse declarations that would make feedparser map names differently from _name()."""
    standard = set(_FeedParserMixin.namespaces.values())
    for prefix, uri in _NS_DECLARATION.findall(data):
        if any(v in uri.lower() for v in _VERSION_URIS) or b"backend.userland.com/rss" in uri.lower():
            raise Decline("RSS 1.0 / 0.9 / userland namespace")
        known = _FeedParserMixin.namespaces.get(uri.decode("utf-8", "replace"))
        name = prefix.decode("utf-8", "replace")
        if name and name in standard and known != name:
            raise Decline(f"prefix {name} bound to {uri!r}")


def parse_fast(body: bytes, response_headers: Mapping[str, str]) -> FeedParserDict | None:
    """feedparser's result for `body`, or None when feedparser must read it.

    `response_headers` are the lower-cased headers workers/parse.py hands
    feedparser (without content-location). Only well-formed documents with
    at least one entry are read here.
    """
    if "content-language" in response_headers or "content-location" in response_headers:
        return None
    try:
        return _parse(body, dict(response_headers))
    except Decline:
        return None
    except etree.LxmlError:
        return None


def _parse(body: bytes, headers: dict[str, str]) -> FeedParserDict | None:
    result = FeedParserDict(bozo=False, entries=[], feed=FeedParserDict(), headers=dict(headers))
    data = convert_to_utf8(headers, body, result)
    if isinstance(result.get("bozo_exception"), (CharacterEncodingOverride, CharacterEncodingUnknown)):
        return None
    first = _FIRST_ELEMENT.search(data)
    if first is None or _DECLARATIONS.search(data, 0, first.start()):
        return None
    _check_namespaces(data)
    root = etree.fromstring(data, _PARSER)
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.xml_version != "1.0":
        return None
    lang = _lang_of(root, None)
    if root.tag == "rss":
        version = root.get("version", "")
        reader = _Reader(_RSS_VERSIONS.get(version) or ("rss20" if version.startswith("2.") else "rss"))
        _attrs(root, frozenset({"version", "xml:lang"}))
        channels = [c for c in root if isinstance(c.tag, str)]
        if len(channels) != 1 or channels[0].tag != "channel":
            return None
        _attrs(channels[0], _NONE)
        if lang:
            reader.feed["language"] = lang.replace("_", "-")
        _walk(reader, channels[0], _FEED, 3, lang)
    elif root.tag == f"{{{ATOM}}}feed":
        reader = _Reader("atom10")
        _attrs(root, _LANG_ONLY)
        if lang:
            reader.feed["language"] = lang.replace("_", "-")
        _walk(reader, root, _ATOM_FEED, 2, lang)
    else:
        return None
    if not reader.entries:
        return None  # an empty feed: feedparser's verdict decides what it is
    result["feed"] = reader.feed
    result["entries"] = reader.entries
    result["version"] = reader.version
    result["namespaces"] = {}
    return result
