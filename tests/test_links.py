"""An item's url, link and enclosure URLs are absolute http(s) or absent (#8, #12 item 2).

Inputs written for these tests, in tests/data/defects/:
- atom-links.xml: Atom entries with tag: ids and no text/html link, a PDF alternate only,
  both, a javascript: alternate and a data: enclosure;
- unsafe-links.xml: one RSS item per spelling of a non-http(s) link (case, whitespace,
  tab/newline character references, entities for letters and the colon, data:, vbscript:,
  file:, tag:), used as link, enclosure and thumbnail beside one https enclosure;
- unsafe-links.json: JSON Feed items whose url, image and attachments start with control
  characters (which XML cannot carry) or split the scheme with CR/LF.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingest.models import FeedSpec, Item
from ingest.urls import http_url
from tests.conftest import DATA_DIR
from workers.normalize.record import normalize_entry
from workers.parse import parse_feed_bytes

DEFECTS = DATA_DIR / "defects"
FEED_URL = "https://feeds.example/links"


def normalize(name: str) -> list[Item]:
    parsed: Any = parse_feed_bytes((DEFECTS / name).read_bytes(), {}, FEED_URL)
    assert not parsed.get("bozo"), parsed.get("bozo_exception")
    spec = FeedSpec("links", FEED_URL)
    return [normalize_entry(e, parsed["feed"], spec, FEED_URL, "2026-01-01T00:00:00Z")
            for e in parsed["entries"]]


def test_a_tag_id_is_never_the_url() -> None:
    note = normalize("atom-links.xml")[0]
    assert note.guid == "tag:reports.example,2025:note-1"
    assert (note.url, note.link) == (None, None)
    assert note.content_text == "Only an id."


def test_an_alternate_of_another_type_is_the_url_when_it_is_the_only_link() -> None:
    _, pdf_only, both, _, http_id = normalize("atom-links.xml")
    assert pdf_only.url == pdf_only.link == "https://feeds.example/files/annual-report-2024.pdf"
    assert both.link == "https://reports.example/reports/q4?utm_source=atom"  # text/html wins
    assert both.url == "https://reports.example/reports/q4"
    # An http(s) Atom id is an identifier, not the page: the PDF alternate is the page.
    assert http_id.url == "https://reports.example/files/5.pdf"


def test_a_javascript_alternate_and_a_data_enclosure_are_dropped_the_rest_stands() -> None:
    item = normalize("atom-links.xml")[3]
    assert (item.url, item.link) == (None, None)
    assert [e.url for e in item.enclosures] == ["https://reports.example/img/chart.png"]
    assert item.title == "A script for a link" and item.summary == "Its text stands."


SPELLINGS = normalize("unsafe-links.xml")


def test_every_spelling_in_the_document_is_tested() -> None:
    assert len(SPELLINGS) == 21


@pytest.mark.parametrize("item", SPELLINGS, ids=[i.title for i in SPELLINGS])
def test_no_spelling_of_an_unsafe_link_reaches_the_record(item: Item) -> None:
    index = item.title.removeprefix("Spelling ")
    assert (item.url, item.link) == (None, None)
    assert [(e.url, e.type, e.length) for e in item.enclosures] == [
        (f"https://cdn.news.example/audio/{index}.mp3", "audio/mpeg", 2000)]
    assert item.content_text == f"The text of story {index} stands."


def test_control_characters_cannot_hide_a_scheme_in_json_feed() -> None:
    items = normalize("unsafe-links.json")
    assert len(items) == 7
    for i, item in enumerate(items[:6]):
        assert (item.url, item.link) == (None, None), item.title
        assert [e.url for e in item.enclosures] == [f"https://cdn.news.example/img/{i}.png"]
        assert item.content_text == f"The text of JSON story {i} stands."
    assert (items[6].url, items[6].link) == (None, None)  # external_url javascript:
    assert items[6].content_text == "An item whose only link is an external_url."


@pytest.mark.parametrize(("url", "kept"), [
    ("https://ex.example/a?b=1", True),
    ("HTTP://EX.example/", True),
    ("http://ex.example", True),
    ("java\tscript:alert(1)", False),
    (" javascript:alert(1)", False),
    ("\x01https://ex.example/", False),  # a browser would strip it; we refuse the spelling
    ("https:///path-without-host", False),
    ("mailto:desk@ex.example", False),
    ("", False),
    (None, False),
])
def test_http_url_keeps_only_absolute_http_urls_as_written(url: str | None, kept: bool) -> None:
    assert http_url(url) == (url if kept else None)


def test_a_control_character_around_an_http_link_is_stripped_as_a_browser_would() -> None:
    entry = {"id": "x", "link": "\x01 https://ex.example/story\x00", "title": "t"}
    item = normalize_entry(entry, {}, FeedSpec("f", FEED_URL), FEED_URL, "2026-01-01T00:00:00Z")
    assert item.link == item.url == "https://ex.example/story"
