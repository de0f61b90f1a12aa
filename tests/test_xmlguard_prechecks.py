"""The byte scans' cheap pre-checks (#21) give what the scans alone gave.

`cut_after_entries` returns at once when the document has no more "<" than the cap
allows entries, and `defuse_char_refs` when it has no "#": both are exact, since every
entry starts with "<" and every character reference holds "#". Held here to the
functions without the pre-checks, on documents built from the pieces that matter.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from workers import xmlguard
from workers.xmlguard import cut_after_entries, defuse_char_refs

PIECES = [b"<item>", b"<entry ", b"<atom:entry/>", b"</item>", b"</entry>", b"<title>t</title>",
          b"&#xD800;", b"&#55296;", b"&#x41;", b"&#", b"#", b"&lt;", b"&amp;", b"<", b"x" * 300,
          b"<![CDATA[<item>]]>", "é".encode(), b"\x00"]


def _defuse_plain(body: bytes) -> bytes:
    if b"&#" not in body:
        return body

    def swap(match: re.Match[bytes]) -> bytes:
        code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
        return xmlguard._REPLACEMENT_REF if xmlguard._no_character(code) else match.group(0)

    return xmlguard._CHAR_REF.sub(swap, body)


def _cut_plain(body: bytes, limit: int) -> tuple[bytes, int]:
    """cut_after_entries as it was before the "<" count (#12)."""
    if limit <= 0 or len(body) < 1024:
        return body, 0
    if xmlguard.scannable_bytes(body) is not body:
        return body, 0
    count = 0
    for match in xmlguard._ENTRY_START.finditer(body):
        count += 1
        if count > limit:
            rest = sum(1 for _ in xmlguard._ENTRY_START.finditer(body, match.start()))
            tail = body.rfind(b"</", match.start())
            last_end = None
            for end in xmlguard._ENTRY_END.finditer(body, max(match.start(), tail - 4096)):
                last_end = end.end()
            if last_end is None:
                return body[: match.start()], rest
            return body[: match.start()] + body[last_end:], rest
    return body, 0


documents = st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(documents, st.integers(min_value=-1, max_value=12))
def test_the_cut_is_the_one_without_the_count(body: bytes, limit: int) -> None:
    body = b"<rss><channel>" + body + b"x" * 1024 + b"</channel></rss>"
    assert cut_after_entries(body, limit) == _cut_plain(body, limit)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_the_references_defused_are_the_ones_without_the_precheck(body: bytes) -> None:
    assert defuse_char_refs(body) == _defuse_plain(body)


def test_a_document_with_fewer_tags_than_the_cap_is_left_whole() -> None:
    body = b"<rss><channel>" + b"<item><title>a</title></item>" * 30 + b"x" * 2000 + b"</channel></rss>"
    assert cut_after_entries(body, 1000) == (body, 0)
    assert cut_after_entries(body, 10) == _cut_plain(body, 10) != (body, 0)
    assert defuse_char_refs(b"no refs &lt; here " * 100) == b"no refs &lt; here " * 100
    assert defuse_char_refs(b"<a>&#xD800;#</a>") == b"<a>&#xFFFD;#</a>"
