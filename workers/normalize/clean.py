"""HTML -> sanitized HTML and plain text.

feedparser's own sanitizer and URI resolver are switched off (they are about
half its cost, and they run on every entry, even ones we then skip); here nh3
(the Rust `ammonia` sanitizer) cleans only what we keep, and resolves relative
links and images against the entry's base in the same pass.

Plain text comes from the *sanitized* HTML, so scripts and styles never leak
into it. Block elements end paragraphs; paragraphs are separated by one blank
line; whitespace inside a paragraph is collapsed; a paragraph that repeats one
seen earlier word for word is dropped (publishers' templates often print a
paragraph twice, as the seed story does).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from urllib.parse import urljoin, urlsplit

import ftfy
import lxml.etree
import lxml.html
import nh3

from workers.htmlguard import defuse_attribute_floods

__all__ = ["dedupe_paragraphs", "fix_mojibake", "html_to_paragraphs", "plain_text", "sanitize_html"]

_URL_SCHEMES = {"http", "https", "mailto"}
_IFRAME_ATTRIBUTES = {"src", "width", "height", "title", "allowfullscreen"}
_IFRAME_SANDBOX = "allow-scripts allow-same-origin allow-presentation allow-popups"
_IFRAME_WITHOUT_SRC = re.compile(r"<iframe(?![^>]*\ssrc=)[^>]*>.*?</iframe>", re.DOTALL)
# Elements whose content HTML parses as raw text (or RCDATA): markup inside is not
# markup. A removed one must take its content along, or a Blogger-style self-closed
# `<p><iframe/></p>` (the rest of the paragraph becomes the iframe's text) leaves
# "</p>" behind as text. nh3 removes these with their content (clean_content_tags).
_RAW_TEXT = frozenset({"iframe", "noembed", "noframes", "noscript", "plaintext", "xmp",
                       "textarea", "title", "script", "style"})
# An allowed iframe keeps its tag, never its raw-text content (never shown by a browser).
_IFRAME_CONTENT = re.compile(r'(<iframe\b(?:[^>"]|"[^"]*")*>).*?</iframe>', re.DOTALL | re.IGNORECASE)
_URL_ATTRIBUTES = {"href", "src", "cite", "poster"}
_BLOCKS = frozenset(
    "address article aside blockquote dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table tbody thead tfoot tr td th ul".split()
)
_SKIP = frozenset({"script", "style", "noscript", "template", "head", "title",
                   "iframe", "noembed", "noframes", "xmp", "plaintext", "textarea"})
_LOOKS_LIKE_MARKUP = re.compile(r"<[A-Za-z/!]|&[#A-Za-z]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
# lxml.html's parser options without its Python element-class callback.
_PLAIN_HTML_PARSER = lxml.etree.HTMLParser()


# What UTF-8 read as windows-1252/Latin-1 looks like: a lead byte (Â..ô) followed by
# a continuation byte's character; plus control characters. Text without any of
# these is left alone without calling ftfy (~200 µs a story even when clean).
_MOJIBAKE_HINT = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
    "\u02c6\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030"
    "\u2039\u203a\u20ac\u2122]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]"
)
# Only the repairs of broken encodings: quotes, widths, ligatures and entities
# stay as the publisher wrote them (entities are decoded later, knowing HTML).
_FTFY = ftfy.TextFixerConfig(
    unescape_html=False, uncurl_quotes=False, fix_latin_ligatures=False,
    fix_character_width=False, fix_line_breaks=False, normalization=None,
    explain=False,
)


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def fix_mojibake(text: str) -> str:
    """`text` with mojibake ("GrÃ¼ÃŸe" -> "Grüße") repaired (ftfy) and C0 control
    characters (which HTML and XML cannot carry; ftfy keeps form feeds) made spaces."""
    if not text:
        return text
    # ASCII text (isascii is O(1) in CPython) can only match the hint's control
    # characters: one character class is scanned instead of the two-way pattern.
    if not (_CONTROL.search(text) if text.isascii() else _MOJIBAKE_HINT.search(text)):
        return text
    return _CONTROL.sub(" ", ftfy.fix_text(text, _FTFY))


def _iframe_allowed(src: str, hosts: frozenset[str]) -> bool:
    try:
        parts = urlsplit(src)
    except ValueError:
        return False
    return parts.scheme == "https" and (parts.hostname or "").lower() in hosts


def sanitize_html(
    fragment: str, base_url: str | None, iframe_hosts: frozenset[str] = frozenset()
) -> str:
    """Safe HTML: no script/style/iframe, no on* handlers, only http(s)/mailto links.

    Relative href/src are made absolute against `base_url`; a value that cannot
    be resolved is dropped rather than kept relative. An iframe survives only
    when its https src is on one of `iframe_hosts` (setting
    `allowed_iframe_hosts`, empty by default), and then sandboxed.
    """
    if not fragment:
        return ""
    fragment = defuse_attribute_floods(_CONTROL.sub(" ", fragment))  # HTML cannot carry them; lxml refuses them

    def resolve(element: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES and base_url:
            try:
                value = urljoin(base_url, value.strip())
            except ValueError:
                return None
        if element == "iframe" and attribute == "src" and not _iframe_allowed(value, iframe_hosts):
            return None
        return value

    if not iframe_hosts:
        return nh3.clean(
            fragment,
            clean_content_tags=_RAW_TEXT,
            url_schemes=_URL_SCHEMES,
            attribute_filter=resolve,
            link_rel="noopener noreferrer nofollow",
        ).strip()
    cleaned = nh3.clean(
        fragment,
        tags=nh3.ALLOWED_TAGS | {"iframe"},
        attributes={**nh3.ALLOWED_ATTRIBUTES, "iframe": _IFRAME_ATTRIBUTES},
        set_tag_attribute_values={"iframe": {"sandbox": _IFRAME_SANDBOX}},
        clean_content_tags=_RAW_TEXT - {"iframe"},
        url_schemes=_URL_SCHEMES,
        attribute_filter=resolve,
        link_rel="noopener noreferrer nofollow",
    )
    return _IFRAME_CONTENT.sub(r"\1</iframe>", _IFRAME_WITHOUT_SRC.sub("", cleaned)).strip()


def _collapse(text: str) -> str:
    # The same as re.sub(r"\s+", " ", text).strip() (str.split and re's \s both
    # use Py_UNICODE_ISSPACE), about five times faster.
    return " ".join(text.split())


def _walk(element: lxml.etree._Element, out: list[str]) -> None:
    """Append text and paragraph markers ("\\n\\n" block edge, "\\n" line break) to `out`."""
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in _SKIP:
        if element.tail:
            out.append(element.tail)
        return
    block = tag in _BLOCKS
    if block:
        out.append("\n\n")
    if tag == "br":
        out.append("\n")
    if element.text and tag:
        out.append(element.text)
    for child in element:
        _walk(child, out)
    if block:
        out.append("\n\n")
    if element.tail:
        out.append(element.tail)


def _split_paragraphs(text: str) -> Iterator[str]:
    # One line break is a soft break inside a paragraph; two or more end it.
    for chunk in _PARAGRAPH_BREAK.split(text):
        collapsed = _collapse(chunk)
        if collapsed:
            yield collapsed


def _fragment_root(fragment: str) -> lxml.etree._Element:
    """lxml.html.fragment_fromstring(fragment, create_parent="div"), with plain elements.

    lxml.html's own parser builds its element classes through a Python
    callback for every element (a third of the cost of a story's text); the
    plain libxml2 HTML parser with the same options builds the same tree
    without it. The wrapping and checks are lxml.html's own
    (fragments_fromstring), and its create_parent step is repeated here.
    """
    elements = lxml.html.fragments_fromstring(defuse_attribute_floods(fragment), parser=_PLAIN_HTML_PARSER)
    root = lxml.etree.Element("div")
    if elements and isinstance(elements[0], str):
        root.text = elements.pop(0)
    root.extend(elements)
    return root


def html_to_paragraphs(fragment: str) -> list[str]:
    """The paragraphs of an HTML fragment as plain text (entities decoded)."""
    if not fragment or not fragment.strip():
        return []
    if not _LOOKS_LIKE_MARKUP.search(fragment):
        return list(_split_paragraphs(fragment))
    try:
        root = _fragment_root(fragment)
    except (lxml.etree.ParserError, ValueError):
        return list(_split_paragraphs(html.unescape(re.sub(r"<[^>]*>", " ", fragment))))
    out: list[str] = []
    _walk(root, out)
    return list(_split_paragraphs("".join(out)))


def dedupe_paragraphs(paragraphs: Iterable[str]) -> list[str]:
    """Keep the first occurrence of each paragraph, in order."""
    seen: set[str] = set()
    kept: list[str] = []
    for paragraph in paragraphs:
        if paragraph not in seen:
            seen.add(paragraph)
            kept.append(paragraph)
    return kept


def plain_text(fragment: str | None) -> str:
    """One line of plain text (titles, summaries): tags dropped, whitespace collapsed."""
    if not fragment:
        return ""
    if not _LOOKS_LIKE_MARKUP.search(fragment):
        return _collapse(fragment)
    return " ".join(html_to_paragraphs(fragment))
