"""Bytes whose declared encoding is wrong -> UTF-8 bytes feedparser can read. Pure.

feedparser honours the HTTP charset, the XML declaration and a BOM (EUC-KR,
Shift_JIS, GB2312, windows-1251, ISO-8859-1 and UTF-16 come out right when
declared). When the bytes do not decode as declared it falls back on
windows-1252 and sets `CharacterEncodingOverride`. For Western European
text that guess is right (the UOL fixture: Latin-1 with no declaration), but
for anything else it turns Russian, Japanese or Korean into Latin soup.

Only on that failure path, charset-normalizer (maintained, pure Python, no
downloads) ranks the encodings by how "messy" each decoding looks. We keep
feedparser's fallback whenever it is among the cleanest candidates (its
windows-1252 is a fine reading of Latin text, where charset-normalizer tends
to prefer a Baltic or Central European code page that reads the same), and
otherwise transcode to UTF-8 with the guessed encoding and rewrite the XML
declaration so the second parse agrees.

A UTF-8 document with a stray bad byte or two is still UTF-8 (#12): re-read
whole in a code page, "Grüße aus Köln" became "GrĂĽĂźe aus KĂ¶ln". So first
`damaged_utf8` counts the well-formed multi-byte UTF-8 sequences against the
bytes that break it; when the well-formed ones win, the document is read as
UTF-8 with each bad byte replaced (U+FFFD), and no other encoding is tried.
A Latin-1 document read as UTF-8 has almost no well-formed sequences, so it
still goes to the code-page path.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

__all__ = ["damaged_utf8", "transcode_misdeclared"]

_DECLARATION = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2", re.IGNORECASE)
# A decoding this much messier than the best one is not "as clean".
_CHAOS_SLACK = 0.01
# One well-formed multi-byte UTF-8 sequence (lead byte + continuation bytes).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return name.lower()


def damaged_utf8(body: bytes) -> bytes | None:
    """`body` as valid UTF-8 with its bad bytes replaced, when it is UTF-8 with damage.

    None when the bytes are valid UTF-8 (nothing to repair) or when the broken
    bytes are as many as the well-formed multi-byte sequences (another encoding).
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return None
    text = body.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - body.count(b"\xef\xbf\xbd")  # replaced, not original U+FFFD
    good = sum(1 for _ in _UTF8_SEQUENCE.finditer(body))
    if good <= bad:
        return None
    return _with_utf8_declaration(text.encode("utf-8"))


def _with_utf8_declaration(text: bytes) -> bytes:
    if text.startswith(codecs.BOM_UTF8):
        text = text[len(codecs.BOM_UTF8) :]
    if _DECLARATION.match(text):
        return _DECLARATION.sub(rb'\1"utf-8"', text, count=1)
    return text


def transcode_misdeclared(body: bytes, fallback: str) -> bytes | None:
    """UTF-8 bytes of `body` read in its detected encoding, or None to keep `fallback`.

    `fallback` is the encoding feedparser settled on after the declared one failed.
    """
    repaired = damaged_utf8(body)
    if repaired is not None:
        return repaired
    matches = charset_normalizer.from_bytes(body)
    best = matches.best()
    if best is None:
        return None
    wanted = _codec(fallback)
    for match in matches:
        if _codec(match.encoding) == wanted and match.chaos <= best.chaos + _CHAOS_SLACK:
            return None
    if _codec(best.encoding) == wanted:
        return None
    return _with_utf8_declaration(str(best).encode("utf-8"))
