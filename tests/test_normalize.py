"""Normalization of the seed story and of every feed: the stand-ins in tests/data
(always) and the real-publisher corpus (when present, see tests/corpus.py)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from ingest.models import FeedSpec, Item
from tests.conftest import DATA_DIR
from tests.corpus import FEEDS_DIR, SEED_DIR, corpus_feeds, require_corpus
from workers.normalize.record import entry_fingerprint, entry_identity, normalize_entry
from workers.parse import parse_feed_bytes

STAND_INS = DATA_DIR / "feeds"
FEED_URL = "https://feeds.example.org/feed"
SPEC = FeedSpec(feed_id="f0", url=FEED_URL)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def normalize_file(path: Path, headers: dict[str, str] | None = None) -> list[Item]:
    parsed: Any = parse_feed_bytes(path.read_bytes(), headers or {}, FEED_URL)
    return [normalize_entry(e, parsed["feed"], SPEC, FEED_URL, "2026-01-01T00:00:00Z")
            for e in parsed["entries"]]


def seed_paragraphs() -> list[str]:
    """The seed story's paragraphs as the feed in tests/data publishes them (repeats included)."""
    body = (DATA_DIR / "seed-yonhap.xml").read_text(encoding="utf-8")
    return [html.unescape(p) for p in re.findall(r"<p>(.*?)</p>", body)]


def test_seed_feed_carries_the_published_text() -> None:
    """tests/data/seed-yonhap.xml is the real seed story, word for word (corpus layer)."""
    require_corpus()
    lines = (SEED_DIR / "yonhap-defense-talks.txt").read_text(encoding="utf-8").splitlines()
    assert seed_paragraphs() == [line for line in lines[2:] if line.strip()]


def test_seed_story_is_one_clean_record() -> None:
    [item] = normalize_file(DATA_DIR / "seed-yonhap.xml")
    assert item.title == "S. Korea, China hold working-level defense talks over peninsula"
    assert item.authors == ["Yonhap"]
    assert item.published_at == "2020-01-16T12:21:00Z"
    assert item.language == "en"
    assert item.categories == ["National", "Defense"]
    assert item.guid == "koreaherald-20200116000812"
    assert item.url == "http://www.koreaherald.com/view.php?ud=20200116000812"
    assert item.link == "http://www.koreaherald.com/view.php?ud=20200116000812&utm_source=rss&utm_medium=feed"

    published = seed_paragraphs()
    assert len(published) == 12  # as published: 10 paragraphs, two of them twice
    paragraphs = item.content_text.split("\n\n")
    assert len(paragraphs) == 10
    assert len(set(paragraphs)) == len(paragraphs)
    expected: list[str] = []
    for p in published:
        if p not in expected:
            expected.append(p)
    assert paragraphs == expected
    assert paragraphs[-1].endswith("last month. (Yonhap)")
    assert "During the 18th round" in paragraphs[1]


def test_ids_and_hashes_are_stable_and_depend_on_the_right_things() -> None:
    [a] = normalize_file(DATA_DIR / "seed-yonhap.xml")
    [b] = normalize_file(DATA_DIR / "seed-yonhap.xml")
    assert a == b
    assert len(a.id) == 32 and len(a.content_hash) == 32
    entry = {"id": "koreaherald-20200116000812", "link": "http://other/"}
    assert entry_identity("f0", entry, FEED_URL) == a.id  # guid decides, not the link
    assert entry_identity("f1", entry, FEED_URL) != a.id  # another feed, another item
    no_guid = {"link": "http://ex.com/a?utm_source=x"}
    assert entry_identity("f0", no_guid, FEED_URL) == entry_identity("f0", {"link": "http://EX.com/a"}, FEED_URL)


def test_fingerprint_changes_with_the_entry() -> None:
    assert entry_fingerprint({"title": "a"}) == entry_fingerprint({"title": "a"})
    assert entry_fingerprint({"title": "a"}) != entry_fingerprint({"title": "b"})


def test_entry_without_date_keeps_null() -> None:
    body = b"""<rss version="2.0"><channel><title>t</title><item><title>No date</title>
    <link>http://ex.com/1</link><description>x</description></item></channel></rss>"""
    parsed: Any = parse_feed_bytes(body, {}, FEED_URL)
    item = normalize_entry(parsed["entries"][0], parsed["feed"], SPEC, FEED_URL, "2026-01-01T00:00:00Z")
    assert item.published_at is None and item.updated_at is None
    assert item.fetched_at == "2026-01-01T00:00:00Z"


def assert_safe_html(html: str) -> None:
    """No script-capable element, no event handler, no javascript:/data: URL (judged on the tree)."""
    if not html:
        return
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    for element in root.iter():
        assert element.tag not in ("script", "style", "iframe", "object", "embed"), element.tag
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            if name in ("href", "src"):
                assert not value.strip().lower().startswith(("javascript:", "data:", "vbscript:"))


def assert_valid_records(items: list[Item], name: str) -> None:
    assert items, name
    assert len({i.id for i in items}) == len(items)
    for item in items:
        assert item.title or item.content_text
        assert item.published_at is None or ISO_UTC.match(item.published_at)
        assert item.updated_at is None or ISO_UTC.match(item.updated_at)
        assert_safe_html(item.content_html)
        paragraphs = item.content_text.split("\n\n") if item.content_text else []
        assert len(paragraphs) == len(set(paragraphs))
        for url in (item.url, item.link):
            assert url is None or url.startswith(("http://", "https://"))
        for enclosure in item.enclosures:
            assert enclosure.url.startswith(("http://", "https://"))


STAND_IN_FILES = sorted(p.name for p in STAND_INS.iterdir()
                        if not p.name.endswith(".expected.json") and p.suffix != ".md")


@pytest.mark.parametrize("name", STAND_IN_FILES)
def test_every_stand_in_feed_normalizes_to_valid_records(name: str) -> None:
    assert_valid_records(normalize_file(STAND_INS / name), name)


@pytest.mark.parametrize("name", corpus_feeds())
def test_every_real_feed_normalizes_to_valid_records(name: str) -> None:
    require_corpus()
    assert_valid_records(normalize_file(FEEDS_DIR / name), name)


def test_encodings_come_out_as_unicode() -> None:
    ru = normalize_file(STAND_INS / "rss2-windows-1251.xml")
    assert ru[0].title.startswith("Цитата #")
    zh = normalize_file(STAND_INS / "rss2-gb2312.xml")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh[0].title)
    de = normalize_file(STAND_INS / "rss2-iso-8859-1.xml")
    assert any(ch in "äöüÄÖÜß" for item in de for ch in item.content_text)
    pt = normalize_file(STAND_INS / "rss2-no-prolog-latin1.xml")  # undeclared windows-1252
    assert pt[0].title == "Ministério anuncia ação contra a dengue"


def test_scripts_in_embedded_content_are_stripped_from_html_and_text() -> None:
    items = normalize_file(STAND_INS / "rss2-embedded-scripts.xml")
    for item in items:
        for gone in ("platform.twitter.example/widgets.js", "function(", "tracker.example",
                     "color: red", "javascript:", "onclick", "embedly"):
            assert gone not in item.content_html, gone
            assert gone not in item.content_text, gone
    assert "Withdrawal fees follow next week." in items[1].content_text


def test_media_rss_and_podcast_enclosures() -> None:
    media = normalize_file(STAND_INS / "rss2-mediarss.xml")
    assert all(len(i.enclosures) == 2 for i in media)  # two widths of one picture
    assert all(e.url.startswith("https://img.daily.example/") for i in media for e in i.enclosures)
    [episode] = normalize_file(STAND_INS / "rss2-podcast.xml")
    [audio] = episode.enclosures  # media:content repeats the enclosure: kept once
    assert (audio.type, audio.length) == ("audio/mpeg", 50496000)


def test_json_feed_items() -> None:
    items = normalize_file(STAND_INS / "jsonfeed-1.0.json")
    assert len(items) == 2
    assert items[0].authors == ["Pat Writer"]  # from the feed
    assert items[0].language == "en-US"
    assert items[0].published_at == "2025-01-06T05:05:47Z"  # -07:00 honoured
    assert items[1].title == "" and items[1].content_text == "A short note without a title."
