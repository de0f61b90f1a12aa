"""Golden records: every shared fixture feed, normalized, compared field by field.

tests/golden/<feed file name>.json holds the records of one fixture feed
(`fetched_at` left out: it is the fetch's clock, not the feed's content). Each
file was read against its source feed before it was committed; what was
checked, per feed, is listed in VERIFIED below, and the values that proved the
normalizer wrong were fixed in the normalizer, not in the golden file.

To rewrite a golden file after a deliberate change of the rules:
    python -m tests.test_golden NAME...      (then read the diff, field by field)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.models import FeedSpec, feed_id_for_url
from tests.conftest import FEEDS_DIR
from workers.normalize import normalize_entry
from workers.parse import parse_feed_bytes

GOLDEN = Path(__file__).parent / "golden"
FETCHED_AT = "2026-01-01T00:00:00Z"
VOLATILE = ("fetched_at",)

VERIFIED = {
    # Filled in per feed after reading the source XML/JSON next to the golden file.
}

FIXTURES = sorted(p.name for p in FEEDS_DIR.glob("*") if p.suffix != ".md")


def records(name: str) -> list[dict[str, Any]]:
    url = f"https://feeds.example/{name}"
    parsed: Any = parse_feed_bytes((FEEDS_DIR / name).read_bytes(), {}, url)
    spec = FeedSpec(feed_id_for_url(url), url)
    out = []
    for entry in parsed["entries"]:
        record = orjson.loads(orjson.dumps(normalize_entry(entry, parsed["feed"], spec, url, FETCHED_AT)))
        for key in VOLATILE:
            record.pop(key)
        out.append(record)
    return out


def golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.json"


def test_every_fixture_has_a_verified_golden_file() -> None:
    assert FIXTURES
    assert sorted(p.name.removesuffix(".json") for p in GOLDEN.glob("*.json")) == FIXTURES
    assert sorted(VERIFIED) == FIXTURES


@pytest.mark.parametrize("name", FIXTURES)
def test_normalized_records_match_the_golden_file(name: str) -> None:
    expected = orjson.loads(golden_path(name).read_bytes())
    actual = records(name)
    assert len(actual) == len(expected), name
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        for field in sorted(set(got) | set(want)):
            assert got.get(field) == want.get(field), f"{name} entry {i} ({want.get('guid')}): {field}"


def write_golden(name: str) -> None:
    golden_path(name).write_bytes(
        orjson.dumps(records(name), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


if __name__ == "__main__":
    for arg in sys.argv[1:] or FIXTURES:
        write_golden(arg)
        print("wrote", golden_path(arg))
