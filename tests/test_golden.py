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
from workers.normalize.record import normalize_entry
from workers.parse import parse_feed_bytes

GOLDEN = Path(__file__).parent / "golden"
FETCHED_AT = "2026-01-01T00:00:00Z"
VOLATILE = ("fetched_at",)
# Set by the pipeline's caps (workers/limits.py, tested in test_hostile.py), never by
# normalize_entry, which is what these files pin: always [] here.
PIPELINE_ONLY = ("truncated",)

VERIFIED = {
    "atom-heise-developer-de.atom": (
        "published 17:22+01:00 -> 16:22Z, updated 17:54:50+01:00 -> 16:54:50Z; authors from the "
        "feed (heise online); wt_mc dropped from url, kept in link; no declared language: "
        "detected de; umlauts; summary and content both present, content wins."
    ),
    "atom-wordpress-xml-base-norm2782.xml": (
        "xml:base on feed and content; links absolute as published; type=html CDATA title "
        "'Wth&#8230; reading books?' -> 'Wth… reading books?'; author norm2782; xml:lang en; "
        "four categories (term); published/updated Z times unchanged."
    ),
    "json-feed-1.0-inessential.json": (
        "date_published -07:00 -> +7 h (2017-06-02T22:05:47-07:00 -> 2017-06-03T05:05:47Z); no "
        "date_modified: updated_at null; authors from the feed (Brent Simmons); language en-US; "
        "&nbsp; decoded in text."
    ),
    "json-feed-1.1-3960-journal-de.json": (
        "+01:00 dates; authors (both 'authors' and legacy 'author') once; de-DE; tags; image as "
        "enclosure; iframes (YouTube embeds) removed from content_html; escaped '<iframe>' text "
        "in code samples kept as text."
    ),
    "rss1-rdf-orf-news-at-bom.xml": (
        "UTF-8 BOM; dc:date +01:00 is the only date: published_at falls back on it (and it is "
        "updated_at, which dc:date is); dc:creator of the channel as author; dc:language de; "
        "dc:subject as category; items without description have empty text."
    ),
    "rss2-golem-de-iso-8859-1.xml": (
        "ISO-8859-1 umlauts; pubDate +0100; content:encoded preferred over description; trailing "
        "tag list '(Red Dead Redemption 2, ...)' is no credit (source null); tracking pixel img "
        "kept as an ordinary image."
    ),
    "rss2-guardian-us-edition-mediarss.xml": (
        "GMT pubDate; dc:date as updated_at; dc:creator ('David Smith in Washington') as "
        "published; categories in order; media:content in two widths as two enclosures (no "
        "type declared: null); en-gb -> en-GB."
    ),
    "rss2-ibash-windows-1251-ru.xml": (
        "windows-1251 Cyrillic; +0300 dates -> UTC; guid = link; <br /> lines are one paragraph "
        "(soft breaks); &#039; decoded; no authors anywhere: []."
    ),
    "rss2-kc0011-gb2312-zh.xml": (
        "GB2312 text; '2020/1/10 14:33:00' (no zone, zh-cn feed) -> 06:33Z (was 2020-11-01 with "
        "feedparser alone); author element as author; relative skins/... images resolved "
        "against the post's link (www.kc0011.net), onload handlers dropped; repeated "
        "'此主题相关图片如下：' once in text and summary."
    ),
    "rss2-medium-hodlhodl-embedded-scripts.xml": (
        "scripts and iframes removed; ?source=rss-... dropped from url, kept in link; "
        "dc:creator; atom:updated with milliseconds -> seconds; CDATA titles and categories."
    ),
    "rss2-podcast-bbc-in-our-time.xml": (
        "enclosure audio/mpeg 50496000 bytes once (media:content repeats it); itunes:author as "
        "author; pubDate +0000; no update date: updated_at null."
    ),
    "rss2-uol-noticias-no-prolog-latin1.xml": (
        "undeclared windows-1252 bytes read as such (ç, ã, º); Portuguese 'Seg, 24 Set 2018 "
        "19:42:40 -0300' -> 22:42:40Z; empty <language>: detected pt; items without description "
        "keep their title only."
    ),
}

FIXTURES = sorted(p.name for p in FEEDS_DIR.glob("*") if p.suffix != ".md")


def records(name: str) -> list[dict[str, Any]]:
    url = f"https://feeds.example/{name}"
    parsed: Any = parse_feed_bytes((FEEDS_DIR / name).read_bytes(), {}, url)
    spec = FeedSpec(feed_id_for_url(url), url)
    out = []
    for entry in parsed["entries"]:
        record = orjson.loads(
            orjson.dumps(normalize_entry(entry, parsed["feed"], spec, url, FETCHED_AT))
        )
        for key in VOLATILE:
            record.pop(key)
        for key in PIPELINE_ONLY:
            assert record.pop(key) == []
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
            assert got.get(field) == want.get(field), (
                f"{name} entry {i} ({want.get('guid')}): {field}"
            )


def write_golden(name: str) -> None:
    golden_path(name).write_bytes(
        orjson.dumps(records(name), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )


if __name__ == "__main__":
    for arg in sys.argv[1:] or FIXTURES:
        write_golden(arg)
        print("wrote", golden_path(arg))
