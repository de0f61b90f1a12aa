"""Shingles that fit the script: the text cut into runs of three tokens, hashed. Pure.

Decided by the characters themselves, never by the declared language
(missing or wrong too often, and one text may mix scripts): each Hangul
syllable, kana and Han character is a token of its own, with punctuation and
spaces dropped; every other run of letters and digits (Latin, Cyrillic,
Greek, numbers) is one word token; a shingle is SHINGLE_SIZE consecutive
tokens. So English is cut into word 3-grams and Korean, Japanese and Chinese
into character 3-grams across any spacing (a Korean particle edited by a copy
desk, `화재가` / `화재는`, changes one character, not a word), and a Japanese
text quoting an English name gets both. Text is NFKC-folded first, so
full-width digits and letters (`３０日`) match their ASCII forms.

Vectorized, with no Python per token or shingle: code points are classed by
one table lookup, each token is hashed once (a sum of its code points
weighted by position), a shingle id combines three token hashes through a
multiply-shift step into 32 bits. Constants are fixed (derived from names or
SplitMix64), so every process on every machine computes the same ids.
"""

from __future__ import annotations

import hashlib
import unicodedata

import numpy as np
import numpy.typing as npt

__all__ = ["SHINGLE_SIZE", "fixed_words", "shingle_ids", "shingle_ids_and_share", "shingles"]

SHINGLE_SIZE = 3
# Text beyond this many characters adds cost, not evidence.
_MAX_CHARS = 20_000

# Hangul (syllables, jamo, compatibility jamo), kana, CJK ideographs.
_CJK_RANGES = (
    (0x1100, 0x11FF), (0x3040, 0x30FF), (0x3130, 0x318F), (0x31F0, 0x31FF),
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF),
)
_OTHER, _WORD, _CJK_CHAR = 0, 1, 2


def _classes() -> npt.NDArray[np.uint8]:
    """The class of every code point of the Basic Multilingual Plane: a letter, digit
    or _ (what the regex \\w matches) is a word character; CJK ranges are CJK characters.

    One table lookup per code point then replaces a regex pass over every text.
    """
    plane = "".join(map(chr, range(0x10000)))
    # str.isalnum() and "_" are exactly what the re module's \\w matches.
    classes = np.fromiter(map(str.isalnum, plane), dtype=np.uint8, count=len(plane))
    classes[ord("_")] = _WORD
    for lo, hi in _CJK_RANGES:
        classes[lo : hi + 1] = np.where(classes[lo : hi + 1] == _WORD, _CJK_CHAR, _OTHER)
    return classes


_CLASS = _classes()
_PLANE = 0xFFFF

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]


def _splitmix(x: U64) -> U64:
    """SplitMix64 of each value: fixed pseudo-random 64-bit words, cheap to make in bulk."""
    x = x * np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def fixed_words(name: str, count: int) -> list[int]:
    """Fixed 64-bit constants derived from names, so that every process on every
    machine computes the same shingles and signatures."""
    return [
        int.from_bytes(hashlib.blake2b(f"{name}:{i}".encode(), digest_size=8).digest(), "little")
        for i in range(count)
    ]


# One weight per position in a token: a token's hash is the weighted sum of its code points.
_POSITION = _splitmix(np.arange(1, _MAX_CHARS + 2, dtype=np.uint64))
_JOIN = np.array([w | 1 for w in fixed_words("shingle", SHINGLE_SIZE)], dtype=np.uint64)
_MIX = np.uint64(fixed_words("mix", 1)[0] | 1)
_S29, _S32 = np.uint64(29), np.uint64(32)


def _codes(text: str) -> npt.NDArray[np.uint8] | U32:
    """The text's code points, NFKC-folded and lower-cased (one byte each for ASCII)."""
    text = text[:_MAX_CHARS]
    if text.isascii():
        return np.frombuffer(text.lower().encode("ascii"), dtype=np.uint8)
    text = unicodedata.normalize("NFKC", text)[:_MAX_CHARS].lower()
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _token_hashes(codes: npt.NDArray[np.uint8] | U32) -> tuple[U64, int]:
    """(one 64-bit hash per token, how many tokens are CJK characters), in about
    twenty numpy calls whatever the length of the text.

    A token starts at a word character after another character, and at every
    CJK character and the character after one; its hash is the sum of its code
    points weighted by their position in the token (other characters weigh
    nothing). Beyond the Basic Multilingual Plane (emoji, rare ideographs) a
    code point separates tokens.
    """
    if codes.dtype == np.uint8:  # ASCII: no CJK
        word = _CLASS[codes] == _WORD
        cjk_count = 0
        start = word.copy()
        start[1:] &= ~word[:-1]
    else:
        kind = _CLASS[np.minimum(codes, _PLANE)]
        word = kind != _OTHER
        cjk = kind == _CJK_CHAR
        cjk_count = int(np.count_nonzero(cjk))
        start = word.copy()
        start[1:] &= ~word[:-1] | cjk[1:] | cjk[:-1]
    starts = np.flatnonzero(start)
    if not len(starts):
        return np.zeros(0, dtype=np.uint64), 0
    # Position in its token of every code point (those before the first token
    # are spaces: any weight will do).
    position = np.arange(len(codes)) - starts[np.cumsum(start) - 1]
    weighted = (codes * word).astype(np.uint64) * _POSITION[position]
    hashes: U64 = np.add.reduceat(weighted, starts)
    return hashes, cjk_count


def shingle_ids_and_share(text: str) -> tuple[U32, float]:
    """The sorted distinct shingle ids of `text`, and its share of CJK tokens."""
    hashes, cjk = _token_hashes(_codes(text))
    if not len(hashes):
        return np.zeros(0, dtype=np.uint32), 0.0
    share = cjk / len(hashes)
    if len(hashes) < SHINGLE_SIZE:
        hashes = np.concatenate([hashes, np.zeros(SHINGLE_SIZE - len(hashes), np.uint64)])
    count = len(hashes) - SHINGLE_SIZE + 1
    combined = hashes[:count] * _JOIN[0]
    for k in range(1, SHINGLE_SIZE):
        combined += hashes[k : k + count] * _JOIN[k]
    # Multiply-shift: the high half of (x ^ x >> 29) * odd is a uniform 32-bit id.
    combined ^= combined >> _S29
    combined *= _MIX
    ids = (combined >> _S32).astype(np.uint32)
    ids.sort()
    return ids[np.concatenate(([True], ids[1:] != ids[:-1]))], share


def shingle_ids(text: str) -> U32:
    """The sorted distinct shingle ids (uint32) of `text`."""
    return shingle_ids_and_share(text)[0]


def shingles(text: str) -> set[int]:
    """The shingle ids of `text` as a set (for measurements and tests)."""
    return set(shingle_ids(text).tolist())
