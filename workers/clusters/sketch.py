"""Near-duplicate detection: MinHash sketches of an item's text, banded for LSH. Pure.

Copies of one wire story differ by an edited headline, a paragraph added or
cut, another credit line; different stories on the same topic share names
and phrases but few runs of words. So the text is cut into shingles of
SHINGLE_SIZE consecutive words (single characters for Chinese and Japanese,
which have no spaces), and the Jaccard similarity of two items' shingle sets
decides: at least the configured threshold (`cluster_threshold`,
docs/normalization.md for how it was chosen) means one story.

MinHash estimates that similarity from NUM_PERM minimum hashes per item, and
LSH finds candidates without comparing against everything: the signature is
cut into BANDS bands of ROWS values; two items whose signatures agree on a
whole band are candidates (probability 1 - (1 - J**ROWS) ** BANDS: 0.9998 at
J = 0.7, 0.93 at J = 0.5, 0.27 at J = 0.25, 0.004 at J = 0.06), and each
candidate is then checked against the threshold with the full signature
(standard error of the estimate: sqrt(J(1-J)/NUM_PERM), 0.065 at J = 0.5).

Why not datasketch: importing it costs ~0.4 s (scipy) and ~300 µs per item,
and its Redis storage is synchronous with a round trip per key, while our
index must batch a whole document per round trip (workers/clusters/index.py).
The MinHash itself is the standard multiply-shift hash family, a few lines of
numpy, ~40 µs per story.

Index memory is per item: BANDS small keys plus one key holding the signature
(~4 KB with Redis' per-key overhead, measured), kept `cluster_retention_hours`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "BANDS",
    "NUM_PERM",
    "Sketch",
    "choose_cluster",
    "shingles",
    "similarity",
    "sketch_text",
]

SHINGLE_SIZE = 3
NUM_PERM = 60
BANDS = 20
ROWS = NUM_PERM // BANDS
# Fewer shingles than this (about a dozen words) is too little text to call two
# items one story: such an item stays in a cluster of its own.
MIN_SHINGLES = 8
# Text beyond this many characters adds cost, not evidence.
_MAX_CHARS = 20_000

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")


def _parameters() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """The hash family's multipliers (odd) and offsets, derived from fixed names so that
    every process on every machine computes the same signatures."""
    words = [
        int.from_bytes(hashlib.blake2b(f"minhash:{i}".encode(), digest_size=8).digest(), "little")
        for i in range(2 * NUM_PERM)
    ]
    a = np.array([w | 1 for w in words[:NUM_PERM]], dtype=np.uint64)
    b = np.array(words[NUM_PERM:], dtype=np.uint64)
    return a, b


_A, _B = _parameters()
_SHIFT = np.uint64(32)


@dataclasses.dataclass(frozen=True)
class Sketch:
    """An item's MinHash signature and its LSH band keys."""

    signature: bytes  # NUM_PERM little-endian uint32 minimum hashes
    bands: tuple[str, ...]  # one key per band: "<band index>:<its rows in hex>"


def shingles(text: str) -> set[int]:
    """CRC-32s of the runs of SHINGLE_SIZE tokens (lower-cased words, CJK characters)."""
    tokens = _TOKEN.findall(text[:_MAX_CHARS].lower())
    if len(tokens) < SHINGLE_SIZE:
        return {zlib.crc32(" ".join(tokens).encode())} if tokens else set()
    return {
        zlib.crc32(" ".join(tokens[i : i + SHINGLE_SIZE]).encode())
        for i in range(len(tokens) - SHINGLE_SIZE + 1)
    }


def sketch_text(text: str) -> Sketch | None:
    """The sketch of `text`, or None when it has too few shingles to compare."""
    found = shingles(text)
    if len(found) < MIN_SHINGLES:
        return None
    values = np.fromiter(found, dtype=np.uint64, count=len(found))
    products = values[:, None] * _A  # wraps modulo 2**64: multiply-shift hashing
    products += _B
    products >>= _SHIFT
    signature = products.min(axis=0).astype("<u4").tobytes()
    width = ROWS * 4
    # The band's own 12 bytes, in hex, are its key: already uniform hash values.
    bands = tuple(f"{i}:{signature[i * width : (i + 1) * width].hex()}" for i in range(BANDS))
    return Sketch(signature=signature, bands=bands)


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures (share of equal minimum hashes)."""
    if len(a) != len(b) or not a:
        return 0.0
    left = np.frombuffer(a, dtype="<u4")
    right = np.frombuffer(b, dtype="<u4")
    return float(np.count_nonzero(left == right)) / len(left)


def choose_cluster(
    signature: bytes,
    candidates: Mapping[str, tuple[str, bytes]],
    threshold: float,
) -> str | None:
    """The cluster of the most similar candidate at or above `threshold`, else None.

    `candidates` maps an item id to (its cluster id, its signature). Ties go to
    the smaller cluster id, so the answer does not depend on dict order.
    """
    best: tuple[float, str] | None = None
    for cluster_id, other in sorted(candidates.values()):
        score = similarity(signature, other)
        if score >= threshold and (best is None or score > best[0]):
            best = (score, cluster_id)
    return best[1] if best else None


def band_candidates(bands: Sequence[str], hits: Mapping[str, str], own_id: str) -> list[str]:
    """Item ids that share at least one band with this item (itself excluded), in order."""
    out: list[str] = []
    for band in bands:
        other = hits.get(band)
        if other and other != own_id and other not in out:
            out.append(other)
    return out
