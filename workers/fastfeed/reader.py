"""The state feedparser keeps while reading a feed, and its pop(): where each value goes.

Mirrors feedparser/mixin.py (`pop`, `_save`, `_sync_author_detail`, `_add_tag`)
for the elements workers/fastfeed/elements.py knows, so that the dicts come
out with feedparser's keys, values and key order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import lxml.etree as etree
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin
from feedparser.util import FeedParserDict

from workers.fastfeed.skip import SkippedEntry

__all__ = ["ATOM", "HTML_TYPES", "LANG", "PREFIXES", "Decline", "Reader", "Rewalk", "attributes", "element_name",
           "leaf_text", "own_text"]

ATOM = "http://www.w3.org/2005/Atom"
_XML = "http://www.w3.org/XML/1998/namespace"
LANG = f"{{{_XML}}}lang"
# feedparser's prefix for each namespace URI the vocabulary uses ('' = the feed's own).
PREFIXES = {ATOM: "", "http://purl.org/rss/1.0/modules/content/": "content",
             "http://purl.org/dc/elements/1.1/": "dc", "http://search.yahoo.com/mrss/": "media",
             "http://search.yahoo.com/mrss": "media", "http://purl.org/rss/1.0/modules/syndication/": "sy",
             "http://purl.org/rss/1.0/modules/slash/": "slash", "http://wellformedweb.org/CommentAPI/": "wfw",
             "http://rssnamespace.org/feedburner/ext/1.0": "feedburner"}
# Namespaces whose presence changes feedparser's idea of the version, or maps to RSS 1.0/0.9.
_CAN_BE_RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
HTML_TYPES = frozenset(_FeedParserMixin.html_types)
_CONTENT_TYPES = {"text": "text/plain", "html": "text/html", "text/plain": "text/plain",
                  "text/html": "text/html"}
_LINK_REFS = re.compile("&([A-Za-z0-9_]+);")
# The entries and the feed are plain dicts (#21): a FeedParserDict's every get() is a
# Python call through its aliases, ~10% of normalizing an entry. What feedparser's
# __setitem__ does with a name is done here: a value it stores under another name
# ('url' as 'href', 'date' as 'updated', ...) is stored under that name, so the dicts,
# and the fingerprints hashed from them, are the same. The one alias normalization
# reads, `enclosures`, it derives itself (workers/normalize/record.py).
Dict = dict[str, Any]
_STORED_AS = {k: v[0] if isinstance(v, list) else v for k, v in FeedParserDict.keymap.items()}
class Decline(Exception):
    """The document is outside what this reader is sure of: feedparser reads it."""


class Rewalk(Exception):
    """A skipped entry is followed by an element of the feed: read the document again, whole.

    An entry's walk leaves state behind that a later feed element reads (the title's
    depth), which a skipped entry does not; so skipping is only exact where nothing of
    the feed comes after one. Rare: publishers put the feed's elements first."""




def _repaired(output: str) -> str:
    """feedparser's last steps on element text: undo UTF-8 read as Latin-1, map cp1252."""
    try:
        output = output.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return output.translate(_cp1252)


def element_name(tag: str) -> str:
    """feedparser's name for an element: 'title', 'dc:creator', ... or Decline."""
    if tag[0] != "{":
        return tag.lower()
    uri, local = tag[1:].split("}", 1)
    prefix = PREFIXES.get(uri)
    if prefix is None:
        raise Decline(f"namespace {uri}")
    return f"{prefix}:{local.lower()}" if prefix else local.lower()


def attributes(el: Any, allowed: frozenset[str]) -> dict[str, str]:
    """The element's attributes as feedparser's handlers see them (keys lowered,
    rel/type values lowered), refusing any outside `allowed`.

    The count is checked first: more attributes than `allowed` holds means one is
    outside it (or repeated), and reading them all is the attacker's choice of cost.
    lxml 6.2's `attrib.items()` is quadratic in C (60,000 attributes: ~10 s that
    SIGALRM cannot interrupt), while `len()` is linear and cheap."""
    attrib = el.attrib
    if len(attrib) > len(allowed):
        raise Decline(f"{len(attrib)} attributes on {el.tag}")
    out: dict[str, str] = {}
    for key, value in attrib.items():
        key = "xml:lang" if key == LANG else key.lower()
        if key not in allowed or key in out:
            raise Decline(f"attribute {key}")
        out[key] = value.lower() if key in ("rel", "type") else value
    return out


def leaf_text(el: Any) -> str:
    if len(el):
        raise Decline(f"markup inside {el.tag}")
    return el.text or ""


def own_text(el: Any) -> str:
    return (el.text or "") + "".join(child.tail or "" for child in el)


class Reader:
    """One document's walk; the state feedparser keeps across elements, and no more."""

    def __init__(self, version: str, known: Mapping[bytes, Any] | None = None, context: bytes = b"") -> None:
        self.version = version
        # Raw keys (raw_key) of entries the caller has read before, with its value for each:
        # those entries become SkippedEntry. None: every entry is read and no key is made.
        self.known = known
        # what besides its bytes an entry's reading depends on, hashed once per document
        self.key_context = hashlib.sha256(context)
        self.raws: list[bytes] = []  # each entry's raw key, in order (when `known` is given)
        self.skipped = False  # an entry was skipped: nothing of the feed may follow (Rewalk)
        self.feed: Dict = {}
        self.entries: list[Dict | SkippedEntry] = []
        self.entry: Dict | None = None
        self.depths: dict[str, int] = {}
        self.title_depth = -1
        self.has_content = False
        self.guidislink = False
        self.in_image = False
        self.single: set[str] = set()

    def raw_key(self, el: Any) -> bytes:
        """128 bits of the entry element's bytes (as lxml serializes its tree, so how the
        publisher escaped a character does not matter) and of `key_context`: equal keys, equal
        dicts. Serializing and hashing are C, ~6 µs for a 2.5 KB farm entry against ~50 µs to
        read it (SHA-256: the CPU's own instructions make it faster than blake2b here)."""
        hasher = self.key_context.copy()
        hasher.update(etree.tostring(el, with_tail=False))
        return hasher.digest()[:16]

    # --- feedparser's pop(): the value of a text element, and where it is stored
    def context(self) -> Dict:
        if self.in_image and "image" in self.feed:
            image: Dict = self.feed["image"]
            return image
        return self.entry if self.entry is not None else self.feed

    def value(self, raw: str, element: str, params: Dict | None) -> str:
        output = raw.strip()
        if element in _CAN_BE_RELATIVE and output and (element != "id" or self.guidislink):
            output = _urljoin("", output)
        if (params is not None and not self.version.startswith("atom")
                and params.get("type") == "text/plain" and _FeedParserMixin.looks_like_html(output)):
            params["type"] = "text/html"
        return _repaired(output)

    def store(self, element: str, raw: str, depth: int, params: Dict | None = None) -> str:
        output = self.value(raw, element, params)
        if element == "title" and -1 < self.title_depth <= depth:
            return output
        if self.entry is not None:
            entry = self.entry
            if element == "content":
                detail = dict(params or {})
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
                    entry[_STORED_AS.get(key, key)] = output
                if params is not None:
                    detail = dict(params)
                    detail["value"] = output
                    entry[_STORED_AS.get(key + "_detail", key + "_detail")] = detail
        else:
            context = self.context()
            key = "subtitle" if element == "description" else element
            context[_STORED_AS.get(key, key)] = output
            if key == "link":
                output = _LINK_REFS.sub(r"&\g<1>", output)
                context["link"] = output
                context["links"][-1]["href"] = output
            elif params is not None:
                detail = dict(params)
                detail["value"] = output
                context[_STORED_AS.get(key + "_detail", key + "_detail")] = detail
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
    def params(self, attrs: Mapping[str, str], default: str, lang: str | None) -> Dict:
        kind = attrs.get("type", default)
        mapped = _CONTENT_TYPES.get(kind)
        if mapped is None:
            raise Decline(f"content type {kind}")
        return {"type": mapped, "language": lang.replace("_", "-") if lang else None, "base": ""}

    # --- authors (feedparser's _sync_author_detail, verbatim in effect)
    def sync_author(self, key: str = "author") -> None:
        context = self.context()
        detail = context.get(key + "s", [{}])[-1]
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
        context.setdefault("author_detail", {})
        context["author_detail"][key] = value
        self.sync_author()
        context.setdefault("authors", [{}])
        context["authors"][-1][key] = value

    def add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        tags = self.context().setdefault("tags", [])
        if not term and not scheme and not label:
            return
        value = {"term": term, "scheme": scheme, "label": label}
        if value not in tags:
            tags.append(value)


_EMAIL = re.compile(r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?""")  # noqa: E501  feedparser's own

