"""Near-duplicate detection: shingles that fit the script, MinHash bands for LSH, and
the similarity check of candidates. Pure.

Copies of one wire story differ by an edited headline, a paragraph added or
cut, another byline or credit; different stories on the same topic share
names and phrases but few runs of text. So the text is cut into shingles and
the Jaccard similarity of two items' shingle sets decides (docs/normalization.md
has the measurements behind every constant here).

Shingles fit the script, decided by the characters themselves, never by the
declared language (missing or wrong too often, and one text may mix scripts):
each Hangul syllable, kana and Han character is a token of its own, with
punctuation and spaces dropped; every other run of letters and digits (Latin,
Cyrillic, Greek, numbers) is one word token; a shingle is SHINGLE_SIZE
consecutive tokens. So English is cut into word 3-grams and Korean, Japanese
and Chinese into character 3-grams, across any spacing (Korean particles and
endings edited by a copy desk, `화재가` / `화재는`, change one character, not a
word), and a Japanese text quoting an English name gets both. Text is NFKC
folded first, so full-width digits and letters (`３０日`) match their ASCII forms.

Character shingles of two copies overlap less than word shingles do (an edit
touches more of them), so the threshold depends on the script: each item
records its share of character tokens, and a pair is judged against the
word threshold, the character threshold, or in between for mixed text
(`threshold_for`).

Candidates come from LSH on a MinHash signature of NUM_PERM values cut into
BANDS bands of ROWS values: two items agreeing on a whole band are candidates,
with probability 1 - (1 - J**ROWS) ** BANDS (0.957 at J = 0.35, 0.994 at
J = 0.44, 0.999 at J = 0.5; 0.63 at J = 0.2). Loose on purpose: a candidate is then checked by
the Jaccard similarity of the two items' shingle samples (the SAMPLE_SIZE
smallest shingle ids, which is the whole set for a text of up to ~500 words
or ~500 CJK characters, then exact; else the bottom-k estimate, standard
error sqrt(J(1-J)/SAMPLE_SIZE), 0.022 at J = 0.5), not by the MinHash estimate
(0.065 at J = 0.5 with 60 values: copies near the threshold fell either side
by chance). At most MAX_CANDIDATES candidates are checked per item, those
sharing the most bands first, so a crowded index costs a bounded amount.

Hashing is vectorized: each token's code points are hashed once (a weighted
sum over the UTF-32 code points, numpy), shingle ids combine three token
hashes and a 64-bit finalizer, and MinHash is the multiply-shift family over
the shingle ids. Why not datasketch: importing it costs ~0.4 s (scipy) and
~300 µs per item, and its Redis storage is a round trip per key, while our
index batches a whole document per round trip (workers/clusters/index.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "BANDS",
    "MAX_CANDIDATES",
    "MIN_SHINGLES",
    "NUM_PERM",
    "SAMPLE_SIZE",
    "SHORT_TEXT",
    "SHORT_TEXT_RAISE",
    "Sample",
    "Sketch",
    "band_candidates",
    "choose_cluster",
    "shingle_ids",
    "shingles",
    "similarity",
    "sketch_text",
    "threshold_for",
]

SHINGLE_SIZE = 3
BANDS = 24
ROWS = 2
NUM_PERM = BANDS * ROWS
# Shingle ids kept per item for the similarity check (4 bytes each in Redis).
SAMPLE_SIZE = 512
# Candidates checked per item at most, those sharing the most bands first.
MAX_CANDIDATES = 4
# Below this many shingles (a brief of two or three sentences: ~150 words or ~150
# CJK characters), a pair's threshold is raised, by SHORT_TEXT_RAISE at most:
# two short posts sharing a template are not one story (docs/normalization.md).
SHORT_TEXT = 150
SHORT_TEXT_RAISE = 0.15
# Fewer shingles than this (about a dozen words) is too little text to call two
# items one story: such an item stays in a cluster of its own.
MIN_SHINGLES = 8
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


def _words(name: str, count: int) -> list[int]:
    """Fixed 64-bit constants derived from names, so that every process on every
    machine computes the same shingles and signatures."""
    return [
        int.from_bytes(hashlib.blake2b(f"{name}:{i}".encode(), digest_size=8).digest(), "little")
        for i in range(count)
    ]


# Bin edges of the one-permutation MinHash over the 32-bit shingle ids.
_EDGES = (np.arange(NUM_PERM + 1, dtype=np.uint64) << np.uint64(32)) // np.uint64(NUM_PERM)
_BINS = np.arange(NUM_PERM, dtype=np.int64)
_STEP = np.uint32(_words("densify", 1)[0] & 0xFFFFFFFF | 1)
# One weight per position in a token: a token's hash is the weighted sum of its code points.
_POSITION = _splitmix(np.arange(1, _MAX_CHARS + 2, dtype=np.uint64))
_JOIN = np.array([w | 1 for w in _words("shingle", SHINGLE_SIZE)], dtype=np.uint64)
_MIX = np.uint64(_words("mix", 1)[0] | 1)
_S29, _S32 = np.uint64(29), np.uint64(32)


@dataclasses.dataclass(frozen=True)
class Sample:
    """What the index keeps of an item to check candidates: its smallest shingle ids.

    `ids`: up to SAMPLE_SIZE sorted uint32 shingle ids (little-endian bytes);
    `complete`: the item has no other shingles (the sample is the whole set);
    `cjk_share`: share of its tokens that are CJK characters, 0-255 for 0-1.
    """

    ids: bytes
    complete: bool
    cjk_share: int

    _FORMAT = b"\x02"

    def encode(self) -> bytes:
        return self._FORMAT + bytes((self.cjk_share, int(self.complete))) + self.ids

    @classmethod
    def decode(cls, raw: bytes) -> Sample | None:
        """The sample stored by `encode`, or None for anything else (an older format)."""
        if len(raw) < 3 or raw[:1] != cls._FORMAT or (len(raw) - 3) % 4:
            return None
        return cls(ids=raw[3:], complete=bool(raw[2]), cjk_share=raw[1])

    def array(self) -> U32:
        return np.frombuffer(self.ids, dtype="<u4")


@dataclasses.dataclass(frozen=True)
class Sketch:
    """An item's LSH band keys and its shingle sample."""

    bands: tuple[str, ...]  # one key per band: "<band index>:<its rows in hex>"
    sample: Sample


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


def _ids_and_share(text: str) -> tuple[U32, float]:
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
    return _ids_and_share(text)[0]


def shingles(text: str) -> set[int]:
    """The shingle ids of `text` as a set (for measurements and tests)."""
    return set(shingle_ids(text).tolist())


def _signature(ids: U32) -> U32:
    """NUM_PERM minimum values by one-permutation hashing, densified. Pure.

    The sorted shingle ids are cut into NUM_PERM equal ranges (bins); a bin's
    value is its smallest id, found by one binary search per bin since the ids
    are sorted already: no hashing of every shingle NUM_PERM times. Two items
    agree on a bin with probability about their Jaccard similarity, like
    NUM_PERM independent MinHashes. An empty bin (short texts) takes the value
    of the next non-empty bin plus a step per bin of distance (rotation
    densification), so that equal texts agree on every bin.
    """
    firsts = np.searchsorted(ids, _EDGES[:-1])
    found = ids[np.minimum(firsts, len(ids) - 1)]
    full = (firsts < len(ids)) & (found < _EDGES[1:])
    if full.all():  # the usual case for a story of a few paragraphs
        return found
    # The next non-empty bin at or after each bin, wrapping around once.
    marks = np.where(full, _BINS, NUM_PERM + np.argmax(full))
    after = np.minimum.accumulate(marks[::-1])[::-1]
    signature: U32 = found[after % NUM_PERM] + (after - _BINS).astype(np.uint32) * _STEP
    return signature


def sketch_text(text: str) -> Sketch | None:
    """The sketch of `text`, or None when it has too few shingles to compare."""
    ids, share = _ids_and_share(text)
    if len(ids) < MIN_SHINGLES:
        return None
    # The band's own bytes, in hex, are its key: already uniform hash values.
    signature = _signature(ids).astype("<u4").tobytes().hex()
    width = ROWS * 8
    bands = tuple(f"{i}:{signature[i * width : (i + 1) * width]}" for i in range(BANDS))
    sample = Sample(
        ids=ids[:SAMPLE_SIZE].astype("<u4").tobytes(),
        complete=len(ids) <= SAMPLE_SIZE,
        cjk_share=round(share * 255),
    )
    return Sketch(bands=bands, sample=sample)


def similarity(a: Sample, b: Sample) -> float:
    """Jaccard similarity of two items' shingle sets: exact when both samples are
    complete, else the bottom-k estimate over the smaller sample."""
    left, right = a.array(), b.array()
    if not len(left) or not len(right):
        return 0.0
    if a.complete and b.complete:
        common = _common(left, right)
        return common / (len(left) + len(right) - common)
    k = min(len(left), len(right))
    cut = np.union1d(left, right)[k - 1]  # the k smallest ids of the union end here
    return _common(left[left <= cut], right[right <= cut]) / k


def _common(left: U32, right: U32) -> int:
    """How many ids two sorted arrays of distinct ids share (binary searches, no sort)."""
    if not len(left) or not len(right):
        return 0
    at = np.minimum(np.searchsorted(right, left), len(right) - 1)
    return int(np.count_nonzero(right[at] == left))


def threshold_for(a: Sample, b: Sample, words: float, characters: float) -> float:
    """The threshold of a pair: `words` for word-shingled text, `characters` for CJK
    text, in between by the pair's mean share of CJK tokens (mixed text); raised
    by up to SHORT_TEXT_RAISE when the shorter item has fewer than SHORT_TEXT
    shingles, where a shared template or boilerplate weighs more."""
    share = (a.cjk_share + b.cjk_share) / (2 * 255)
    shorter = min(len(a.ids), len(b.ids)) // 4
    raised = SHORT_TEXT_RAISE * max(0.0, 1 - shorter / SHORT_TEXT)
    return min(1.0, words + (characters - words) * share + raised)


def choose_cluster(
    sample: Sample,
    candidates: Mapping[str, tuple[str, Sample]],
    words: float,
    characters: float,
) -> str | None:
    """The cluster of the most similar candidate at or above the pair's threshold, else None.

    `candidates` maps an item id to (its cluster id, its sample). Ties go to
    the smaller cluster id, so the answer does not depend on dict order.
    """
    best: tuple[float, str] | None = None
    for cluster_id, other in sorted(candidates.values(), key=lambda c: c[0]):
        score = similarity(sample, other)
        if score >= threshold_for(sample, other, words, characters) and (
            best is None or score > best[0]
        ):
            best = (score, cluster_id)
    return best[1] if best else None


def band_candidates(bands: Sequence[str], hits: Mapping[str, str], own_id: str) -> list[str]:
    """Item ids sharing a band with this item (itself excluded): at most MAX_CANDIDATES,
    those sharing the most bands first (ties: the first band's)."""
    counts: dict[str, int] = {}
    for band in bands:
        other = hits.get(band)
        if other and other != own_id:
            counts[other] = counts.get(other, 0) + 1
    ranked = sorted(counts, key=lambda i: -counts[i])  # stable: first seen first among equals
    return ranked[:MAX_CANDIDATES]
