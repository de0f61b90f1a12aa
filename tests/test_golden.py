"""Golden records: feed documents normalized and compared field by field with the
records a person checked against the source.

Two sets, one test each:
- tests/data/feeds/<name> + <name>.expected.json: stand-ins written for the tests, one
  per format, encoding and hard case of the real corpus (always run);
- tests/golden/<name>.json: the 12 real-publisher feeds of ../shared/fixtures (run when
  the corpus is present, see tests/corpus.py).

`fetched_at` is left out: it is the fetch's clock, not the feed's content. What was
checked, per feed, is listed in STAND_INS and VERIFIED below; values that proved the
normalizer wrong were fixed in the normalizer, not in the expected file.

To rewrite expected records after a deliberate change of the rules:
    python -m tests.test_golden NAME...      (then read the diff, field by field)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.models import FeedSpec, feed_id_for_url
from tests.conftest import DATA_DIR
from tests.corpus import FEEDS_DIR, GOLDEN_DIR, corpus_feeds, require_corpus
from workers.normalize.record import normalize_entry
from workers.parse import parse_feed_bytes

STAND_IN_DIR = DATA_DIR / "feeds"
FETCHED_AT = "2026-01-01T00:00:00Z"
VOLATILE = ("fetched_at",)
# Set by the pipeline's caps (workers/limits.py, tested in test_hostile.py), never by
# normalize_entry, which is what these files pin: always [] here.
PIPELINE_ONLY = ("truncated",)

STAND_INS = {
    "atom10-summary-content.atom": (
        "Atom 1.0, feed-level author only; +01:00 -> UTC; summary and content: content wins; "
        "inline style attributes dropped; wt_mc dropped from url, kept in link; no declared "
        "language: detected de."
    ),
    "atom10-wordpress-xml-base.xml": (
        "xml:base on feed and on content; ../ links and relative images resolved against the "
        "content's base; a relative alternate link against the feed's base; type=html CDATA "
        "title 'Why&#8230;' decoded once; xml:lang en; categories from term."
    ),
    "jsonfeed-1.0.json": (
        "feed-level author; -07:00 honoured; &nbsp; a space in text, kept in HTML; an item "
        "with only content_text: title empty, text as one paragraph; language en-US."
    ),
    "jsonfeed-1.1.json": (
        "authors and legacy author once; iframe removed; escaped <iframe> in code kept as "
        "text; image as enclosure; only date_modified: published_at falls back on it."
    ),
    "rss1-rdf-bom.xml": (
        "UTF-8 BOM; dc:date (+01:00) the only date: both published and updated; channel "
        "dc:creator as author; dc:language de; dc:subject as category; items without "
        "description keep their title only."
    ),
    "rss2-embedded-scripts.xml": (
        "script, style, iframe, noscript (with its content) and on* removed; javascript: href "
        "dropped; ?source=rss-... dropped from url, kept in link; CDATA titles; atom:updated "
        "with milliseconds -> seconds."
    ),
    "rss2-gb2312.xml": (
        "GB2312; '2025/1/6 14:33:00' with no zone in a zh-cn feed -> 06:33Z; author element; "
        "relative skins/ image resolved against the post's link, onload dropped; repeated "
        "line once."
    ),
    "rss2-iso-8859-1.xml": (
        "ISO-8859-1 umlauts; generator comment before the root; content:encoded over "
        "description; +0100; trailing tag list is no credit; tracking pixel kept as an image."
    ),
    "rss2-mediarss.xml": (
        "media:content in two widths: two enclosures with type null; dc:creator as author; "
        "dc:date as updated_at; categories in order; en-gb -> en-GB."
    ),
    "rss2-no-prolog-latin1.xml": (
        "no XML declaration, windows-1252 bytes; Portuguese 'Seg, 06 Jan 2025 19:42:40 -0300' "
        "-> 22:42:40Z; empty <language>: detected pt; no guid."
    ),
    "rss2-podcast.xml": (
        "enclosure audio/mpeg 50496000 once (media:content repeats it); itunes:author; +0000; "
        "no update date: updated_at null."
    ),
    "rss2-windows-1251.xml": (
        "windows-1251 Cyrillic; +0300 -> UTC; guid = link; <br /> lines are one paragraph; "
        "&#039; decoded; no authors: []."
    ),
}

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


def stand_ins() -> list[str]:
    return sorted(p.name for p in STAND_IN_DIR.iterdir()
                  if p.is_file() and not p.name.endswith(".expected.json") and p.suffix != ".md")


def records(path: Path) -> list[dict[str, Any]]:
    url = f"https://feeds.example/{path.name}"
    parsed: Any = parse_feed_bytes(path.read_bytes(), {}, url)
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


def expected_path(name: str) -> Path:
    """Where the checked records of feed `name` live (stand-in or real feed)."""
    if (STAND_IN_DIR / name).is_file():
        return STAND_IN_DIR / f"{name}.expected.json"
    return GOLDEN_DIR / f"{name}.json"


def source_path(name: str) -> Path:
    return STAND_IN_DIR / name if (STAND_IN_DIR / name).is_file() else FEEDS_DIR / name


def assert_records_match(name: str) -> None:
    expected = orjson.loads(expected_path(name).read_bytes())
    actual = records(source_path(name))
    assert len(actual) == len(expected), name
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        for field in sorted(set(got) | set(want)):
            assert got.get(field) == want.get(field), (
                f"{name} entry {i} ({want.get('guid')}): {field}"
            )


def test_every_stand_in_has_a_checked_expected_file() -> None:
    assert len(stand_ins()) >= 12
    assert sorted(STAND_INS) == stand_ins()
    assert all(expected_path(name).is_file() for name in stand_ins())


@pytest.mark.parametrize("name", stand_ins())
def test_stand_in_records_match_the_expected_file(name: str) -> None:
    assert_records_match(name)


def test_every_real_feed_has_a_verified_golden_file() -> None:
    require_corpus()
    real = sorted(p.name for p in FEEDS_DIR.glob("*") if p.suffix != ".md")
    assert real == corpus_feeds()
    assert sorted(VERIFIED) == real


@pytest.mark.parametrize("name", corpus_feeds())
def test_real_feed_records_match_the_golden_file(name: str) -> None:
    require_corpus()
    assert_records_match(name)


def write_expected(name: str) -> None:
    expected_path(name).write_bytes(
        orjson.dumps(records(source_path(name)), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )


if __name__ == "__main__":
    for arg in sys.argv[1:] or stand_ins():
        write_expected(arg)
        print("wrote", expected_path(arg))
