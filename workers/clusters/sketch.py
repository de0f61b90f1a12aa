"""Near-duplicate detection: shingles that fit the script, MinHash bands for LSH, and
the similarity check of candidates. Pure.

Copies of one wire story differ by an edited headline, a paragraph added or
cut, another byline or credit; different stories on the same topic share
names and phrases but few runs of text. So the text is cut into shingles and
the Jaccard similarity of two items' shingle sets decides (docs/normalization.md
has the measurements behind every constant here).

Shingles fit the script (workers/clusters/shingles.py): word 3-grams for
English, Russian and the like, character 3-grams for Korean, Japanese and
Chinese, decided by the characters, never by the declared language.
Character shingles of two copies overlap less than word shingles do (an edit
touches more of them), so the threshold depends on the script: each item
records its share of character tokens, and a pair is judged against the
word threshold, the character threshold, or in between for mixed text
(`threshold_for`).

Candidates come from LSH on a MinHash signature of NUM_PERM values cut into
BANDS bands of ROWS values: two items agreeing on a whole band are candidates,
with probability 1 - (1 - J**ROWS) ** BANDS (0.957 at J = 0.35, 0.994 at
J = 0.44, 0.999 at J = 0.5; 0.63 at J = 0.2). Loose on purpose: a candidate
is then checked by the Jaccard similarity of the two items' shingle samples (the SAMPLE_SIZE
smallest shingle ids, which is the whole set for a text of up to ~500 words
or ~500 CJK characters, then exact; else the bottom-k estimate, standard
error sqrt(J(1-J)/SAMPLE_SIZE), 0.022 at J = 0.5), not by the MinHash estimate
(0.065 at J = 0.5 with 60 values: copies near the threshold fell either side
by chance). At most MAX_CANDIDATES candidates are checked per item, those
sharing the most bands first, so a crowded index costs a bounded amount.

The MinHash is one-permutation hashing over the sorted
shingle ids (`_signature`): one binary search per bin, not NUM_PERM hashes of
every shingle. Why not datasketch: importing it costs ~0.4 s (scipy) and
~300 µs per item, and its Redis storage is a round trip per key, while our
index batches a whole document per round trip (workers/clusters/index.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from workers.clusters.shingles import fixed_words, shingle_sets

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
    "similarity",
    "sketch_text",
    "sketch_texts",
    "threshold_for",
]

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

U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
_LOW = np.uint64(0xFFFFFFFF)

# Bin edges of the one-permutation MinHash over the 32-bit shingle ids.
_EDGES = (np.arange(NUM_PERM + 1, dtype=np.uint64) << np.uint64(32)) // np.uint64(NUM_PERM)
_BINS = np.arange(NUM_PERM, dtype=np.int64)
_BAND_NUMBERS = np.arange(BANDS, dtype=np.uint8)
_STEP = np.uint32(fixed_words("densify", 1)[0] & 0xFFFFFFFF | 1)


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

    # One per band: its index (1 byte), then its ROWS MinHash values (4 bytes each,
    # little-endian): already the band's key in the index, with no text in between.
    bands: tuple[bytes, ...]
    sample: Sample


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
    return sketch_texts([text])[0]


def sketch_texts(texts: Sequence[str]) -> list[Sketch | None]:
    """The sketch of each text (None: too few shingles to compare), all at once (#21):
    the shingles of every text in one pass (`shingle_sets`) and the MinHash in one
    binary search over every text's shingle ids, each id tagged with its text's
    number in the high 32 bits, instead of a few dozen numpy calls per text. The
    same values as `_signature` of each."""
    sets = shingle_sets(texts)
    counts = np.diff(sets.offsets)
    kept = np.flatnonzero(counts >= MIN_SHINGLES)
    out: list[Sketch | None] = [None] * len(texts)
    if not len(kept):
        return out
    signatures = _signatures(sets.tagged, kept)
    # Band b of row r: its index, then values 2b and 2b + 1 (little-endian): 9 bytes.
    rows = np.empty((len(kept), BANDS, 1 + ROWS * 4), dtype=np.uint8)
    rows[:, :, 0] = _BAND_NUMBERS
    rows[:, :, 1:] = signatures.astype("<u4").view(np.uint8).reshape(len(kept), BANDS, ROWS * 4)
    packed = rows.tobytes()
    width = BANDS * (1 + ROWS * 4)
    ids = (sets.tagged & _LOW).astype("<u4").tobytes()
    starts, sizes = sets.offsets.tolist(), counts.tolist()
    for r, i in enumerate(kept.tolist()):
        row = packed[r * width : (r + 1) * width]
        bands = tuple(row[j : j + 1 + ROWS * 4] for j in range(0, width, 1 + ROWS * 4))
        at, size = starts[i], sizes[i]
        sample = Sample(
            ids=ids[4 * at : 4 * (at + min(size, SAMPLE_SIZE))],
            complete=size <= SAMPLE_SIZE,
            cjk_share=round(sets.shares[i] * 255),
        )
        out[i] = Sketch(bands=bands, sample=sample)
    return out


def _signatures(tagged: U64, rows: npt.NDArray[np.intp]) -> U32:
    """`_signature` of the texts numbered `rows` (none without ids) in `tagged` (every
    text's sorted shingle ids, tagged with its number in the high 32 bits), as one
    array of rows. Pure."""
    base = (rows.astype(np.uint64) << np.uint64(32))[:, None]
    firsts = np.searchsorted(tagged, base + _EDGES[:-1])
    found = tagged[np.minimum(firsts, len(tagged) - 1)]
    full = (firsts < len(tagged)) & (found < base + _EDGES[1:])
    values = (found & _LOW).astype(np.uint32)
    if full.all():
        return values
    # Rows with empty bins: the next non-empty bin at or after each bin, wrapping
    # around once (every row has a non-empty bin: its text has shingles).
    marks = np.where(full, _BINS, NUM_PERM + np.argmax(full, axis=1)[:, None])
    after = np.minimum.accumulate(marks[:, ::-1], axis=1)[:, ::-1]
    picked = np.take_along_axis(values, after % NUM_PERM, axis=1)
    signatures: U32 = picked + (after - _BINS).astype(np.uint32) * _STEP
    return signatures


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


def band_candidates(bands: Sequence[bytes], hits: Mapping[bytes, str], own_id: str) -> list[str]:
    """Item ids sharing a band with this item (itself excluded): at most MAX_CANDIDATES,
    those sharing the most bands first (ties: the first band's)."""
    counts: dict[str, int] = {}
    for band in bands:
        other = hits.get(band)
        if other and other != own_id:
            counts[other] = counts.get(other, 0) + 1
    ranked = sorted(counts, key=lambda i: -counts[i])  # stable: first seen first among equals
    return ranked[:MAX_CANDIDATES]
