"""Refuse entity blow-ups before any parser expands them. Pure; bounded memory.

expat stops a billion-laughs or quadratic-blowup document with its
amplification limit, but feedparser then falls back on its lenient parser,
which expands every entity declared on a line of its own in the internal
subset: one 100 KB entity referenced 10,000 times cost a worker 5 GiB (#12).

So before feedparser sees a document, `entity_refusal` reads the prolog (the
part before the first element, where feedparser and expat find the DTD),
takes the internal general entities declared there, computes the length each
expands to (arithmetic on lengths, never the expansion itself, with a depth
limit and cycle check) and counts the references in the whole document. When
the total growth passes the budget, the document is refused with the reason.

Ordinary entity declarations (`<!ENTITY nbsp "&#160;">`, as in RSS 0.91 DTD
copies) grow a document by a few bytes per use and pass. Parameter entities
(`%name;`) can declare further entities we would have to interpret; no feed
needs them, so a document declaring one is refused. External entities
(SYSTEM/PUBLIC) are never fetched by either parser (tested in
tests/test_hostile.py) and cost nothing here.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["DEFAULT_BUDGET", "cut_after_entries", "defuse_char_refs", "entity_refusal", "scannable_bytes"]

DEFAULT_BUDGET = 1_000_000  # bytes a document may grow by through its own entities
_MAX_DEPTH = 16  # nesting of entity references inside entity values

_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_:]")
_DECLARATION = re.compile(
    rb"""<!ENTITY\s+(%\s+)?([^\s%"'>]+)\s+(?:"([^"]*)"|'([^']*)'|(SYSTEM|PUBLIC)\b[^>]*)""",
    re.IGNORECASE,
)
_REFERENCE = re.compile(rb"&([A-Za-z_:][-A-Za-z0-9._:]*);")
_PREDEFINED = {b"lt", b"gt", b"amp", b"apos", b"quot"}
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,16})|([0-9]{1,20}));")
_REPLACEMENT_REF = b"&#xFFFD;"


def _no_character(code: int) -> bool:
    """A code point no text may hold: a surrogate half, or beyond Unicode."""
    return 0xD800 <= code <= 0xDFFF or code > 0x10FFFF


def defuse_char_refs(body: bytes) -> bytes:
    """`body` with references to surrogates or non-characters (`&#xD800;`, `&#x110000;`)
    replaced by U+FFFD's: feedparser raises on them and one such reference
    rejected the whole feed (#12). Other bytes are untouched."""
    # `#` first: a search for one byte is memchr (~2 µs for 80 KB), while one for "&#"
    # stops at every "&" of an escaped-HTML feed (~80 µs for the farm's documents, #21)
    if b"#" not in body or b"&#" not in body:
        return body

    def swap(match: re.Match[bytes]) -> bytes:
        code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
        return _REPLACEMENT_REF if _no_character(code) else match.group(0)

    return _CHAR_REF.sub(swap, body)


def scannable_bytes(body: bytes) -> bytes:
    """The document in an ASCII-compatible encoding, so the byte patterns above apply.

    UTF-16/32 (by BOM or by NUL bytes in the first characters) is re-encoded as
    UTF-8, as feedparser does before its own DTD handling; anything else is
    ASCII-compatible already for the characters we look for.
    """
    head = body[:4]
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if head.startswith(bom):
            return body.decode(codec, errors="replace").encode("utf-8")
    if head[:2] == b"<\x00":
        return body.decode("utf-16-le", errors="replace").encode("utf-8")
    if head[:2] == b"\x00<":
        return body.decode("utf-16-be", errors="replace").encode("utf-8")
    return body


def _expanded_lengths(values: dict[bytes, bytes]) -> dict[bytes, int] | str:
    """Length each internal entity expands to, or why they cannot be judged."""
    lengths: dict[bytes, int] = {}
    active: set[bytes] = set()

    def length(name: bytes, depth: int) -> int:
        if name in lengths:
            return lengths[name]
        if name in active:
            raise RecursionError(f"entity {name.decode(errors='replace')!r} refers to itself")
        if depth > _MAX_DEPTH:
            raise RecursionError(f"entities nested more than {_MAX_DEPTH} deep")
        active.add(name)
        value = values[name]
        total = len(value)
        for ref in _REFERENCE.finditer(value):
            inner = ref.group(1)
            if inner in values:
                total += length(inner, depth + 1) - len(ref.group(0))
        active.discard(name)
        lengths[name] = total
        return total

    try:
        for name in values:
            length(name, 0)
    except RecursionError as e:
        return str(e)
    return lengths


def entity_refusal(body: bytes, budget: int = DEFAULT_BUDGET) -> str | None:
    """Why `body` may not be parsed (an entity blow-up), or None when it may.

    Cost: one regex pass over the prolog and one over the document; memory is
    the declared values (which are part of the body) and one int per entity.
    """
    data = scannable_bytes(body)
    first = _FIRST_ELEMENT.search(data)
    prolog = data[: first.start()] if first else data
    if b"<!ENTITY" not in prolog.upper():
        return None
    values: dict[bytes, bytes] = {}
    for match in _DECLARATION.finditer(prolog):
        if match.group(1):
            return "the document type declares parameter entities"
        value = match.group(3) if match.group(3) is not None else match.group(4)
        if value is not None and match.group(2) not in _PREDEFINED:
            values.setdefault(match.group(2), value)
    if not values:
        return None
    lengths = _expanded_lengths(values)
    if isinstance(lengths, str):
        return lengths
    growth = 0
    for ref in _REFERENCE.finditer(data):
        name = ref.group(1)
        if name in lengths:
            growth += lengths[name] - len(ref.group(0))
            if growth > budget:
                return (f"its entities would expand it by more than {budget} bytes "
                        f"(entity {name.decode(errors='replace')!r} is {lengths[name]} bytes)")
    return None


_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_ENTRY_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")


def cut_after_entries(body: bytes, limit: int) -> tuple[bytes, int]:
    """(`body` cut before its entry number `limit` + 1, how many entries were cut off).

    feedparser builds every entry of a document before we can cap them: a
    100,000-item feed took a worker to 1.7 GB (#12). Cutting the bytes before
    the first entry past the cap bounds that work; feedparser reads the cut
    document whole: what followed the last entry of the original (its closing
    tags) is put back after the cut, so the strict parser reads it and the slow
    lenient one is not needed. A literal `<item>` inside CDATA can only make the
    cut earlier, never later.
    """
    if limit <= 0 or len(body) < 1024:
        return body, 0
    if body.count(b"<") <= limit:  # each entry starts with one: fewer than the cap (#21: ~25 µs
        return body, 0             # for 80 KB, where the pattern's scan took ~80 µs)
    data = scannable_bytes(body)
    if data is not body:
        return body, 0  # UTF-16/32 (rare): left whole; entries are capped after parsing
    count = 0
    for match in _ENTRY_START.finditer(body):
        count += 1
        if count > limit:
            rest = sum(1 for _ in _ENTRY_START.finditer(body, match.start()))
            tail = body.rfind(b"</", match.start())
            last_end = None
            for end in _ENTRY_END.finditer(body, max(match.start(), tail - 4096)):
                last_end = end.end()
            if last_end is None:  # no closing tag near the end: cut and let feedparser recover
                return body[: match.start()], rest
            return body[: match.start()] + body[last_end:], rest
    return body, 0
