"""Normalization of the seed story and of every shared real-publisher feed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from ingest.models import FeedSpec, Item
from tests.conftest import DATA_DIR, FEEDS_DIR, SEED_DIR
from workers.normalize.record import entry_fingerprint, entry_identity, normalize_entry
from workers.parse import parse_feed_bytes

FEED_URL = "https://feeds.example.org/feed"
SPEC = FeedSpec(feed_id="f0", url=FEED_URL)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def normalize_file(path: Path, headers: dict[str, str] | None = None) -> list[Item]:
    parsed: Any = parse_feed_bytes(path.read_bytes(), headers or {}, FEED_URL)
    return [normalize_entry(e, parsed["feed"], SPEC, FEED_URL, "2026-01-01T00:00:00Z")
            for e in parsed["entries"]]


def seed_paragraphs() -> list[str]:
    lines = (SEED_DIR / "yonhap-defense-talks.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines[2:] if line.strip()]


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


FIXTURE_FILES = sorted(p.name for p in FEEDS_DIR.glob("*") if p.suffix != ".md")


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_every_shared_feed_normalizes_to_valid_records(name: str) -> None:
    items = normalize_file(FEEDS_DIR / name)
    assert items, name
    assert len({i.id for i in items}) == len(items)
    for item in items:
        assert item.title or item.content_text
        assert item.published_at is None or ISO_UTC.match(item.published_at)
        assert item.updated_at is None or ISO_UTC.match(item.updated_at)
        assert_safe_html(item.content_html)
        paragraphs = item.content_text.split("\n\n") if item.content_text else []
        assert len(paragraphs) == len(set(paragraphs))
        assert item.url is None or item.url.startswith(("http://", "https://"))
        for enclosure in item.enclosures:
            assert enclosure.url.startswith(("http://", "https://"))


def test_encodings_come_out_as_unicode() -> None:
    ru = normalize_file(FEEDS_DIR / "rss2-ibash-windows-1251-ru.xml")
    assert ru[0].title.startswith("Цитата #")
    zh = normalize_file(FEEDS_DIR / "rss2-kc0011-gb2312-zh.xml")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh[0].title)
    de = normalize_file(FEEDS_DIR / "rss2-golem-de-iso-8859-1.xml")
    assert any(ch in "äöüÄÖÜß" for item in de for ch in item.content_text)


def test_scripts_in_medium_content_are_stripped_from_html_and_text() -> None:
    items = normalize_file(FEEDS_DIR / "rss2-medium-hodlhodl-embedded-scripts.xml")
    for item in items:
        assert "platform.twitter.com/widgets.js" not in item.content_html
        assert "function(" not in item.content_text


def test_media_rss_and_podcast_enclosures() -> None:
    guardian = normalize_file(FEEDS_DIR / "rss2-guardian-us-edition-mediarss.xml")
    assert any(e.url.startswith("https://i.guim.co.uk/") for i in guardian for e in i.enclosures)
    [episode] = normalize_file(FEEDS_DIR / "rss2-podcast-bbc-in-our-time.xml")
    audio = [e for e in episode.enclosures if e.type == "audio/mpeg"]
    assert audio and audio[0].length and audio[0].length > 0


def test_json_feed_items() -> None:
    items = normalize_file(FEEDS_DIR / "json-feed-1.0-inessential.json")
    assert len(items) == 20
    assert items[0].authors == ["Brent Simmons"]  # from the feed
    assert items[0].language == "en-US"
    assert items[0].published_at == "2017-06-03T05:05:47Z"  # -07:00 honoured
