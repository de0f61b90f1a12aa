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

import dataclasses
import hashlib
import unicodedata
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["SHINGLE_SIZE", "ShingleSets", "fixed_words", "shingle_ids", "shingle_ids_and_share",
           "shingle_sets", "shingles"]

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


@dataclasses.dataclass(frozen=True)
class ShingleSets:
    """The shingle ids of several texts, computed at once (#21).

    `tagged`: every text's sorted distinct shingle ids (uint32), each tagged with
    its text's number in the high 32 bits: sorted by text, then id.
    `offsets`: where each text's ids start in `tagged` (one more: the end).
    `shares`: each text's share of CJK tokens.
    """

    tagged: U64
    offsets: npt.NDArray[np.intp]
    shares: list[float]

    def ids(self, number: int) -> U32:
        """The sorted distinct shingle ids of text `number`."""
        at, end = self.offsets[number], self.offsets[number + 1]
        return (self.tagged[at:end] & _LOW).astype(np.uint32)


_LOW = np.uint64(0xFFFFFFFF)
_SPACE = np.zeros(1, dtype=np.uint32) + ord(" ")


def shingle_sets(texts: Sequence[str]) -> ShingleSets:
    """The shingle ids of each text, all at once: one pass of about thirty numpy calls
    over the texts' code points laid end to end (a space between two), instead of
    as many per text; a text's ids are the same as alone (#21).

    A token starts at a word character after another character, and at every
    CJK character and the character after one; its hash is the sum of its code
    points weighted by their position in the token (other characters weigh
    nothing). Beyond the Basic Multilingual Plane (emoji, rare ideographs) a
    code point separates tokens. A text of one or two tokens is one shingle
    (padded with zeros).
    """
    count = len(texts)
    parts = [_codes(text) for text in texts]
    ascii_only = all(part.dtype == np.uint8 for part in parts)
    codes = np.concatenate([x for part in parts for x in (part, _SPACE)]) if parts else _SPACE
    if ascii_only:
        codes = codes.astype(np.uint8)
    lengths = np.fromiter((len(part) + 1 for part in parts), dtype=np.intp, count=count)
    char_offsets = np.concatenate(([0], np.cumsum(lengths)))
    kind = _CLASS[codes] if ascii_only else _CLASS[np.minimum(codes, _PLANE)]
    word = kind != _OTHER
    start = word.copy()
    if ascii_only:  # no CJK
        start[1:] &= ~word[:-1]
        cjk_counts = np.zeros(count, dtype=np.intp)
    else:
        cjk = kind == _CJK_CHAR
        start[1:] &= ~word[:-1] | cjk[1:] | cjk[:-1]
        cjk_at = np.searchsorted(char_offsets, np.flatnonzero(cjk), "right") - 1
        cjk_counts = np.bincount(cjk_at, minlength=count)
    starts = np.flatnonzero(start)
    if not len(starts):
        return ShingleSets(np.zeros(0, dtype=np.uint64), np.zeros(count + 1, dtype=np.intp),
                           [0.0] * count)
    # Position in its token of every code point, clipped: the code points that are
    # not in a token (spaces between texts, before the first) weigh nothing anyway.
    position = np.arange(len(codes)) - starts[np.cumsum(start) - 1]
    np.clip(position, 0, len(_POSITION) - 1, out=position)
    weighted = (codes * word).astype(np.uint64) * _POSITION[position]
    hashes: U64 = np.add.reduceat(weighted, starts)
    # Each text's tokens, padded to SHINGLE_SIZE with zeros (a text of one or two
    # tokens is one shingle); its shingles are the runs within it.
    token_text = np.searchsorted(char_offsets, starts, "right") - 1
    tokens = np.bincount(token_text, minlength=count)
    slots = np.where(tokens > 0, np.maximum(tokens, SHINGLE_SIZE), 0)
    slot_offsets = np.concatenate(([0], np.cumsum(slots)))
    token_offsets = np.concatenate(([0], np.cumsum(tokens)))
    padded = np.zeros(slot_offsets[-1], dtype=np.uint64)
    padded[np.arange(len(hashes)) - token_offsets[token_text] + slot_offsets[token_text]] = hashes
    runs = np.maximum(slots - SHINGLE_SIZE + 1, 0)
    run_text = np.repeat(np.arange(count, dtype=np.intp), runs)
    run_offsets = np.concatenate(([0], np.cumsum(runs)))
    first = np.arange(len(run_text)) - run_offsets[run_text] + slot_offsets[run_text]
    combined = padded[first] * _JOIN[0]
    for k in range(1, SHINGLE_SIZE):
        combined += padded[first + k] * _JOIN[k]
    # Multiply-shift: the high half of (x ^ x >> 29) * odd is a uniform 32-bit id.
    combined ^= combined >> _S29
    combined *= _MIX
    tagged = (combined >> _S32) | (run_text.astype(np.uint64) << _S32)
    tagged.sort()
    if len(tagged):
        tagged = tagged[np.concatenate(([True], tagged[1:] != tagged[:-1]))]
    per_text = np.bincount((tagged >> _S32).astype(np.intp), minlength=count)
    shares = [c / t if t else 0.0 for c, t in zip(cjk_counts.tolist(), tokens.tolist(), strict=True)]
    return ShingleSets(tagged, np.concatenate(([0], np.cumsum(per_text))), shares)


def shingle_ids_and_share(text: str) -> tuple[U32, float]:
    """The sorted distinct shingle ids of `text`, and its share of CJK tokens."""
    sets = shingle_sets([text])
    return sets.ids(0), sets.shares[0]


def shingle_ids(text: str) -> U32:
    """The sorted distinct shingle ids (uint32) of `text`."""
    return shingle_ids_and_share(text)[0]


def shingles(text: str) -> set[int]:
    """The shingle ids of `text` as a set (for measurements and tests)."""
    return set(shingle_ids(text).tolist())
