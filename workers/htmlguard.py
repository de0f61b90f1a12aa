"""HTML with a tag of thousands of attributes: defused before any parser sees it.

Both HTML parsers we hand untrusted markup to check each attribute against
the ones before it: libxml2's HTML parser (lxml.html, trafilatura) takes ~11 s
for one tag of 60,000 attributes, nh3 (html5ever) ~1.7 s, and both run in C
or Rust, where SIGALRM cannot interrupt them: the parse deadline would fire
only after, and the worker's liveness check would kill the process first
(#19). No real page or feed puts more than a few dozen attributes on a tag. A
tag with more than MAX_ATTRIBUTES is kept as the bare tag, its attributes
dropped; its text and children stay, so the story reads as before.

Finding such a tag must not be superlinear itself. One regex match walks the
markup as the HTML tokenizer does (text, then a tag whose quoted values may
hold `<` and `>`, then text), with possessive quantifiers so that nothing is
ever tried twice, and stops at the first tag that does not close within
MAX_ATTRIBUTES attributes. Only there does Python step in. An ordinary story
costs one C call (~3 µs for the benchmark farm's 2 KB entries); a million
attributes ~0.2 s.
"""

from __future__ import annotations

import logging
import re
from typing import AnyStr

__all__ = ["MAX_ATTRIBUTES", "defuse_attribute_floods", "defuse_attribute_floods_bytes"]

log = logging.getLogger(__name__)

MAX_ATTRIBUTES = 255
# One attribute as the tokenizer reads it: separator, name, optional value (quoted, which
# may hold anything and may run to the end, or bare).
_ATTRIBUTE = r"(?>[\s/]++[^\s/>=]++(?>\s*+=\s*+(?>\"[^\"]*+\"?|'[^']*+'?|[^\s>]*+))?)"
_SHORT_TAG = rf"<[A-Za-z][^\s/>]*+{_ATTRIBUTE}{{0,{MAX_ATTRIBUTES}}}+[\s/]*+(?:>|\Z)"
# Everything up to the first tag that is not a short tag: text, `</x>`, `<!--`, short tags.
_SAFE_PREFIX = rf"(?:[^<]++|<(?![A-Za-z])|{_SHORT_TAG})*+"
# The tag found there, whole, its name in group 1.
_LONG_TAG = rf"<([A-Za-z][^\s/>]*+){_ATTRIBUTE}*+[\s/]*+>?"

_SAFE_PREFIX_STR, _LONG_TAG_STR = re.compile(_SAFE_PREFIX), re.compile(_LONG_TAG)
_SAFE_PREFIX_BYTES, _LONG_TAG_BYTES = re.compile(_SAFE_PREFIX.encode()), re.compile(_LONG_TAG.encode())


def _defuse(html: AnyStr, safe_prefix: re.Pattern[AnyStr], long_tag: re.Pattern[AnyStr]) -> tuple[AnyStr, int]:
    parts: list[AnyStr] = []
    position, defused = 0, 0
    while True:
        prefix = safe_prefix.match(html, position)
        end = prefix.end() if prefix else position  # it always matches (possibly nothing)
        if end >= len(html):
            break
        tag = long_tag.match(html, end)
        assert tag is not None  # the prefix stops only at `<` + a letter, which starts a tag
        closed = tag.end() > tag.start() and html[tag.end() - 1:tag.end()] in (">", b">")
        parts += [html[position:tag.end(1)], html[tag.end() - 1:tag.end()] if closed else html[:0]]
        position, defused = tag.end(), defused + 1
    if not defused:
        return html, 0
    parts.append(html[position:])
    return html[:0].join(parts), defused


def defuse_attribute_floods(html: str) -> str:
    """`html` with every tag of more than MAX_ATTRIBUTES attributes bare (and a log line)."""
    out, defused = _defuse(html, _SAFE_PREFIX_STR, _LONG_TAG_STR)
    if defused:
        log.warning("HTML: %d tag(s) with more than %d attributes kept without them", defused, MAX_ATTRIBUTES)
    return out


def defuse_attribute_floods_bytes(html: bytes) -> bytes:
    """The same for an undecoded page (article pages are parsed from bytes)."""
    out, defused = _defuse(html, _SAFE_PREFIX_BYTES, _LONG_TAG_BYTES)
    if defused:
        log.warning("page: %d tag(s) with more than %d attributes kept without them", defused, MAX_ATTRIBUTES)
    return out
