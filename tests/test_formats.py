"""Formats and encodings the shared fixtures lack, from small inputs in tests/data/formats/.

Each file was written for this test (by hand or, for the encodings, by encoding the
same text in the named code page); what each asserts was checked against the source.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingest.models import FeedSpec, Item
from tests.conftest import DATA_DIR
from workers.normalize.record import normalize_entry
from workers.parse import parse_feed_bytes

FORMATS = DATA_DIR / "formats"
FETCHED_AT = "2026-01-01T00:00:00Z"


def normalize(name: str, headers: dict[str, str] | None = None) -> tuple[Any, list[Item]]:
    url = f"http://feeds.example/{name}"
    parsed: Any = parse_feed_bytes((FORMATS / name).read_bytes(), headers or {}, url)
    spec = FeedSpec("f0", url)
    return parsed, [normalize_entry(e, parsed["feed"], spec, url, FETCHED_AT)
                    for e in parsed["entries"]]


def test_rss_091_latin1_entities_and_managing_editor() -> None:
    parsed, [item] = normalize("rss091.xml")
    assert parsed["version"].startswith("rss091")
    assert item.title == 'Café owners & the "new" rules'
    assert item.summary == "Owners of cafés say the rules hurt business."
    assert item.content_html == "Owners of cafés say the rules <b>hurt</b> business."
    # "desk@wire.example (News Desk)": feedparser alone says "ple (News Desk".
    assert item.authors == ["News Desk"]
    assert item.guid is None and item.published_at is None
    assert item.url == "http://wire.example/story/1"
    assert item.link == "http://wire.example/story/1?utm_source=rss091"
    assert item.language == "en-US"


def test_rss_092_enclosure_and_relative_link() -> None:
    parsed, [item] = normalize("rss092.xml")
    assert parsed["version"] == "rss092"
    assert item.link == "http://feeds.example/shows/12"  # relative to the document
    [enclosure] = item.enclosures
    assert (enclosure.url, enclosure.type, enclosure.length) == (
        "http://radio.example/media/ep12.mp3", "audio/mpeg", 12345678)


def test_rss_10_dublin_core_and_content_encoded() -> None:
    parsed, [item] = normalize("rss1-dc.xml")
    assert parsed["version"] == "rss10"
    assert item.authors == ["Marie Dupont"]  # dc:creator
    assert item.published_at == "2020-01-14T17:30:00Z"  # dc:date +01:00
    assert item.language == "fr-FR"  # dc:language
    assert item.categories == ["Politique"]  # dc:subject
    assert item.summary == "Résumé court."
    assert item.content_text.split("\n\n") == [
        "Le gouvernement a présenté mardi son projet de budget pour l'année prochaine.",
        "Les députés commenceront l'examen du texte la semaine prochaine."]


def test_atom_03() -> None:
    parsed, [item] = normalize("atom03.xml")
    assert parsed["version"] == "atom03"
    assert item.guid == "tag:atom03.example,2005:1"
    assert item.published_at == "2005-07-31T12:29:29Z"  # issued, +02:00
    assert item.updated_at == "2005-07-31T12:29:29Z"  # modified
    assert item.authors == ["Feed Author"]  # from the feed
    assert item.language == "en"
    # No xml:base: relative links in the body resolve against the article's link.
    assert 'href="http://atom03.example/about"' in item.content_html


def test_atom_10_xml_base_resolves_links_images_and_enclosures() -> None:
    _, [item] = normalize("atom10-xml-base.xml")
    assert item.title == "Zwei & drei Dinge"  # type="html" title, entities decoded once
    assert item.link == "http://base.example/blog/posts/2020/zwei-und-drei.html"
    assert 'href="http://base.example/blog/posts/2020/more.html"' in item.content_html
    assert 'src="http://base.example/static/a.png"' in item.content_html
    assert "alert" not in item.content_html and "onclick" not in item.content_html
    assert item.content_text == "See more and .\n\nSecond paragraph."
    assert [e.url for e in item.enclosures] == ["http://base.example/blog/img/bild.jpg"]
    assert item.language == "en-GB"  # the content's xml:lang beats the feed's de-AT
    assert (item.published_at, item.updated_at) == ("2020-01-16T08:00:00Z", "2020-01-16T09:30:00Z")


def test_media_group_contents_and_thumbnail() -> None:
    _, [item] = normalize("media-group.xml")
    assert [(e.url, e.type, e.length) for e in item.enclosures] == [
        ("http://video.example/v/1-720.mp4", "video/mp4", 7340032),
        ("http://video.example/v/1-360.mp4", "video/mp4", 2097152),
        ("http://video.example/v/1.jpg", None, None),
    ]
    assert item.published_at == "2020-01-16T12:21:00Z"  # JST


KOREAN = "한국과 중국, 서울서 국방정책 실무회의 개최"
JAPANESE = "日韓、東京で防衛当局の実務者協議"


@pytest.mark.parametrize(
    ("name", "title", "language"),
    [
        ("euc-kr.xml", KOREAN, "ko"),
        ("shift_jis.xml", JAPANESE, "ja"),
        ("utf8-bom.xml", KOREAN, "ko"),
        ("utf16-bom.xml", JAPANESE, "ja"),
        ("declared-utf8-is-cp1251.xml", "Цитата дня", "ru"),
        ("declared-utf8-is-euc-kr.xml", KOREAN, "ko"),  # no language declared: detected
        ("mojibake.xml", "Grüße aus Köln – Straßenbahn fährt wieder", "de"),
    ],
)
def test_encodings_come_out_as_correct_unicode(name: str, title: str, language: str) -> None:
    _, [item] = normalize(name)
    assert item.title == title
    assert item.language == language
    assert "\ufffd" not in item.content_text and "Ã" not in item.content_text
    assert len(item.content_text.split("\n\n")) in (1, 2)


def test_declared_encoding_wins_over_a_wrong_http_charset() -> None:
    _, [item] = normalize("euc-kr.xml", {"Content-Type": "text/xml; charset=utf-8"})
    assert item.title == KOREAN


def test_naive_date_in_a_korean_feed_is_seoul_time() -> None:
    _, [item] = normalize("declared-utf8-is-euc-kr.xml")  # "2020-01-16 21:21:00", detected ko
    assert item.published_at == "2020-01-16T12:21:00Z"


def test_dates_named_zones_localized_missing_and_far_future() -> None:
    _, items = normalize("dates.xml")
    # guids as published ("kst"), not resolved against the feed's URL
    got = {i.guid: (i.published_at, i.date_in_future) for i in items if i.guid}
    assert got == {
        "kst": ("2020-01-16T12:21:00Z", False),
        "est": ("2020-01-16T12:21:00Z", False),
        "cest": ("2020-07-14T12:00:00Z", False),
        "iso": ("2020-01-16T12:21:00Z", False),
        "pt": ("2018-09-24T22:42:40Z", False),
        "none": (None, False),
        "garbage": (None, False),
        "future": ("2100-01-01T00:00:00Z", True),
        "soon": ("2026-01-01T10:00:00Z", False),
    }


def test_byline_in_the_text_and_closing_credit() -> None:
    _, [first, second] = normalize("byline.xml")
    assert first.authors == ["Kim Eun-jung", "Lee Min-ji"]
    assert first.source == "Yonhap"
    assert second.authors == ["Someone Else"]
    assert second.source == "Wire Service"  # RSS <source>; "(THAAD)." is no credit


def test_guidless_entries_are_keyed_by_canonical_link_then_title_and_date() -> None:
    from workers.normalize.record import entry_identity

    by_link = entry_identity("f0", {"link": "http://ex.com/a?utm_medium=x#top"}, "http://ex.com/")
    assert by_link == entry_identity("f0", {"link": "HTTP://EX.COM:80/a"}, "http://ex.com/")
    by_title = entry_identity("f0", {"title": "T", "published": "Mon, 06 Jan 2025"}, "http://ex.com/")
    assert by_title == entry_identity("f0", {"title": "T", "published": "Mon, 06 Jan 2025"}, "http://x/")
    assert by_title != entry_identity("f0", {"title": "T", "published": "Tue, 07 Jan 2025"}, "http://x/")
    # Known value: the same on every machine and run (blake2b, no process salt).
    assert entry_identity("f0", {"id": "koreaherald-20200116000812"}, "") == (
        "d3b6384e25b9f95aa0dcf644d50f0b71")  # blake2b-128("f0\nguid:...")


def test_rss_090_title_and_link_only() -> None:
    parsed, items = normalize("rss090.xml")
    assert parsed["version"] == "rss090"
    assert [(i.title, i.url) for i in items] == [
        ("First headline of the day", "http://rss090.example/news/1.html"),
        ("Second headline & more", "http://rss090.example/news/2.html"),
    ]
    assert all(i.guid is None and i.published_at is None and i.content_text == "" for i in items)
    assert len({i.id for i in items}) == 2  # keyed by canonical link


def test_relative_guids_stay_as_published_so_ids_survive_a_feed_move() -> None:
    body = (FORMATS / "dates.xml").read_bytes()
    first: Any = parse_feed_bytes(body, {}, "http://old.example/feed.xml")
    moved: Any = parse_feed_bytes(body, {}, "https://new.example/rss")
    from workers.normalize.record import entry_identity

    assert [e["id"] for e in first["entries"]][:2] == ["kst", "est"]
    assert [entry_identity("f0", e, "http://old.example/feed.xml") for e in first["entries"]] == [
        entry_identity("f0", e, "https://new.example/rss") for e in moved["entries"]
    ]


def test_an_installed_chardet_never_decides_the_encoding() -> None:
    """Records must not depend on what else is installed: feedparser would ask chardet
    (pulled in by readability-lxml, for one) before its own fallbacks; that guess
    garbled a latin-1 feed without a prolog ("açăo")."""
    import feedparser.encodings

    import workers.parse  # noqa: F401 - importing it is what switches chardet off

    assert feedparser.encodings.lazy_chardet_encoding is None
