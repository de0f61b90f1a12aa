"""The real-publisher corpus (`../shared/fixtures` beside the clone): an extra layer.

The suite passes without it: every test that is not about the real corpus reads
stand-ins in tests/data. The corpus tests (the golden records of the real feeds,
every real feed normalizes to valid records, the seed text) call
`require_corpus()`: they skip, saying where they looked, when it is absent, and
fail instead when TEST_REQUIRE_FIXTURES=1 (set by .ci/run), the same pattern as
tests/pgfixture.py for PostgreSQL.

Variables (TEST_*, never INGEST_*, which are the service's settings):
  TEST_FIXTURES_DIR        the corpus directory (default: ../shared/fixtures beside the repository)
  TEST_REQUIRE_FIXTURES=1  a missing corpus fails its tests instead of skipping them
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["FEEDS_DIR", "FIXTURES_DIR", "GOLDEN_DIR", "SEED_DIR", "corpus_feeds", "require_corpus"]

REPO = Path(__file__).resolve().parents[1]
FIXTURES_DIR = Path(os.environ.get("TEST_FIXTURES_DIR") or REPO.parent / "shared" / "fixtures")
FEEDS_DIR = FIXTURES_DIR / "feeds"
SEED_DIR = FIXTURES_DIR / "seed"
GOLDEN_DIR = REPO / "tests" / "golden"  # one <feed file name>.json per real feed, kept in the repository


def corpus_feeds() -> list[str]:
    """The real feeds' file names, known from their golden files (so the list, and the
    skips, are the same whether or not the corpus is present)."""
    return sorted(p.name.removesuffix(".json") for p in GOLDEN_DIR.glob("*.json"))


def _missing() -> str | None:
    if not FEEDS_DIR.is_dir() or not SEED_DIR.is_dir():
        return (f"real-feed corpus not found at {FIXTURES_DIR} "
                "(set TEST_FIXTURES_DIR to its directory; it needs feeds/ and seed/)")
    return None


def require_corpus() -> None:
    """Skip the calling test without the corpus; fail instead under TEST_REQUIRE_FIXTURES=1."""
    why = _missing()
    if why is None:
        return
    if os.environ.get("TEST_REQUIRE_FIXTURES") == "1":
        pytest.fail(f"{why} (TEST_REQUIRE_FIXTURES=1: the corpus tests must run)")
    pytest.skip(why)
