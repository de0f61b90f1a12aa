"""Full text from article pages (#15), the pure parts: fetch policy, robots, paywalls,
extraction and page metadata, on the pages of tests/data/articles/ (written for the
tests in the shapes news sites use)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.models import Item
from tests.conftest import DATA_DIR
from workers.article.extract import extract_article
from workers.article.merge import marked, with_article
from workers.article.metadata import PageMeta, page_meta
from workers.article.policy import (
    _TEASER,
    has_fewer_words,
    is_paywalled,
    is_teaser,
    robots_allows,
    should_fetch,
    word_count,
)

PAGES = DATA_DIR / "articles"
SEED_URL = "http://www.koreaherald.com/view.php?ud=20200116000812"
SEED_FEED = (DATA_DIR / "seed-yonhap.xml").read_text()
SEED_PARAGRAPHS = re.findall(r"<p>(.*?)</p>", SEED_FEED)


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


@pytest.mark.parametrize(("mode", "text", "link", "expected"), [
    ("off", "short", "http://a/x", False),
    ("auto", "short", "http://a/x", True),
    ("auto", "word " * 80, "http://a/x", False),
    ("auto", "word " * 79, "http://a/x", True),
    ("auto", "word " * 100 + "Read more", "http://a/x", True),
    ("auto", "word " * 100 + "[…]", "http://a/x", True),
    ("auto", "short", None, False),
    ("auto", "short", "ftp://a/x", False),
    ("always", "word " * 500, "https://a/x", True),
])
def test_should_fetch(mode: str, text: str, link: str | None, expected: bool) -> None:
    assert should_fetch(mode, text, 80, link) is expected


def test_teasers_and_words() -> None:
    assert is_teaser("The council met on Monday... Continue reading")
    assert is_teaser("The council met on Monday …")
    assert not is_teaser("The council met on Monday.")
    assert word_count("한국과 중국") == 5 + 2  # CJK characters count as words
    assert word_count("two words") == 2


def test_a_teaser_is_found_at_the_end_of_a_long_story_and_only_there() -> None:
    story = "The council met on Monday and talked. " * 200  # ~7,600 characters
    assert is_teaser(story + "Read more")
    assert is_teaser(story + "Read the full story »")
    assert not is_teaser("Read more. " + story)
    long_gap = "read" + " " * 300 + "more"  # a match of any length is still found
    assert is_teaser(story + long_gap)
    assert not is_teaser(story + "un" + long_gap)  # the word boundary, as forwards


_TEXTS = st.lists(
    st.sampled_from(["word", "read", "more", "see", "the", "full", "story", "article",
                     "continue", "reading", "…", "...", "[", "]", "»", ">>", "unread",
                     "한국", "(Yonhap)", ".", " ", "\n\n", "\t", "Read More", "ſee", "FULL",
                     "x_", "__", "-", ">", "»…", "]…["]),
    max_size=120,
).flatmap(lambda words: st.sampled_from(["", " ", "  "]).map(lambda sep: sep.join(words)))


# Every alternative of the pattern, near misses of each, and marks after them.
_ENDINGS = st.sampled_from([
    "read more", "See more", "read the full story", "see the full article", "Read The Full Article",
    "continue reading", "Continue\treading", "[...]", "[ … ]", "...", "…", "… »", "... >>", "...]",
    "see  the\nfull  story", "ſee more", "unread more", "oversee more", "read moreover",
    "read the full stories", "continue readings", "discontinue reading", "[..]", "..", "[…", "»",
])
_TRAILERS = st.sampled_from(["", ".", "!!", " »", ".....", " ›››››", ")", "a"])


@settings(max_examples=400, deadline=None)
@given(_TEXTS, _ENDINGS, _TRAILERS, st.integers(min_value=0, max_value=300))
def test_the_mirrored_teaser_search_and_the_early_word_count_agree_with_the_plain_ones(
    text: str, ending: str, trailer: str, limit: int
) -> None:
    text = text + " " + ending + trailer
    assert is_teaser(text) is bool(_TEASER.search(text.strip()))
    assert has_fewer_words(text, limit) is (word_count(text) < limit)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="readmoseful thicngvy.…[]»>_ \n한\u017fK", max_size=80))
def test_the_mirrored_teaser_pattern_agrees_on_any_text(text: str) -> None:
    assert is_teaser(text) is bool(_TEASER.search(text.strip()))
    assert has_fewer_words(text, 3) is (word_count(text) < 3)


def test_robots() -> None:
    robots = "User-agent: *\nDisallow: /private/\n\nUser-agent: ingest\nDisallow: /nobots/\n"
    ua = "ingest/0.1 (news feed ingestion service)"
    assert robots_allows(robots, ua, "http://a.example/news/1")
    assert not robots_allows(robots, ua, "http://a.example/nobots/1")
    assert robots_allows(None, ua, "http://a.example/private/1")  # no robots.txt: allowed
    everyone = "User-agent: *\nDisallow: /\n"
    assert not robots_allows(everyone, ua, "http://a.example/news/1")
    assert robots_allows(everyone, ua, "http://a.example/news/1", ignore_hosts=["A.example"])


def test_paywall_detection() -> None:
    assert is_paywalled(200, page("paywalled.html"))  # JSON-LD isAccessibleForFree "False"
    assert is_paywalled(402, b"")
    assert is_paywalled(403, b"")
    assert is_paywalled(401, b"")
    assert is_paywalled(200, b'<div class="article paywall">Subscribe</div>')
    for free in ("koreaherald-20200116000812.html", "jsonld-only.html", "opengraph-only.html"):
        assert not is_paywalled(200, page(free)), free


def test_seed_page_extracts_the_story_without_boilerplate() -> None:
    article = extract_article(page("koreaherald-20200116000812.html"), SEED_URL)
    assert article is not None
    body = [p.replace(" (Yonhap)", "") for p in SEED_PARAGRAPHS]
    unique = list(dict.fromkeys(body))  # the two repeated paragraphs once
    assert article.paragraphs == [*unique, "(Yonhap)"]
    assert article.content_html == "".join(
        f"<p>{p.replace('&', '&amp;')}</p>" for p in article.paragraphs)
    for noise in ("Section 1", "Related stories", "cookies", "Copyright", "Share on Facebook", "By Yonhap"):
        assert noise not in article.content_text


def test_seed_page_metadata_reads_the_printed_byline_and_kst_dateline() -> None:
    meta = page_meta(page("koreaherald-20200116000812.html"), SEED_URL)
    assert meta == PageMeta(
        canonical=SEED_URL,
        headline="S. Korea, China hold working-level defense talks over peninsula",
        published_at="2020-01-16T12:21:00Z",  # 21:21 KST, printed without a zone
        updated_at=None, authors=["Yonhap"], publisher=None, language="en",
    )


def test_dateline_zone_follows_the_host() -> None:
    printed = b"<html><body><div><h1>T</h1><p>By Kim Jae-won and Lee Ha-na</p>" \
              b"<p>Published : Jan. 16, 2020 - 21:21 Updated : Jan. 17, 2020 - 09:05</p></div></body></html>"
    kr = page_meta(printed, "https://news.example.co.kr/a")
    assert (kr.published_at, kr.updated_at) == ("2020-01-16T12:21:00Z", "2020-01-17T00:05:00Z")
    assert kr.authors == ["Kim Jae-won", "Lee Ha-na"]
    assert page_meta(printed, "https://news.example.com/a").published_at == "2020-01-16T21:21:00Z"


def test_json_ld_only_page() -> None:
    html = page("jsonld-only.html")
    assert page_meta(html, "http://127.0.0.1/news/harbour") == PageMeta(
        canonical=None, headline="Harbour reopens after three-day storm closure",
        published_at="2024-03-05T07:30:00Z", updated_at="2024-03-05T09:15:00Z",
        authors=["Ingrid Larsen", "Tomas Berg"], publisher="Coast Daily", language="en",
    )
    article = extract_article(html, "http://127.0.0.1/news/harbour")
    assert article is not None and len(article.paragraphs) == 4
    assert article.paragraphs[0].startswith("The harbour reopened to shipping")
    assert "Most read" not in article.content_text and "Weather" not in article.content_text


def test_open_graph_only_page() -> None:
    html = page("opengraph-only.html")
    assert page_meta(html, "http://127.0.0.1/news/library-hours") == PageMeta(
        canonical="http://127.0.0.1/news/library-hours?utm_source=og",
        headline="City library extends opening hours for exam season",
        published_at="2024-05-20T06:00:00Z", updated_at="2024-05-20T13:45:00Z",
        authors=["Maria Gomez"], publisher="Town Courier", language=None,
    )
    article = extract_article(html, "http://127.0.0.1/news/library-hours")
    assert article is not None and len(article.paragraphs) == 3
    assert "reader123" not in article.content_text and "Front page" not in article.content_text


def test_pages_without_a_story() -> None:
    assert extract_article(b"", "http://a/x") is None
    assert extract_article(b"<html><head><title>x</title></head><body></body></html>", "http://a/x") is None
    assert page_meta(b"", "http://a/x") == PageMeta()


def _item(**changes: object) -> Item:
    base = dict(id="i", version=0, feed_id="f", feed_url="http://f/", feed_title="F", url=None,
                link="http://127.0.0.1/news/library-hours", guid=None, title="", authors=[],
                published_at=None, updated_at=None, fetched_at="2026-01-01T00:00:00Z",
                summary="The city library will stay open late.",
                content_html="<p>The city library will stay open late.</p>",
                content_text="The city library will stay open late.", language="en", categories=[],
                enclosures=[], content_hash="h", cluster_id="i")
    return Item(**{**base, **changes})  # type: ignore[arg-type]


def test_with_article_fills_only_what_the_feed_lacks() -> None:
    html = page("opengraph-only.html")
    url = "http://127.0.0.1/news/library-hours"
    article, meta = extract_article(html, url), page_meta(html, url)
    assert article is not None
    merged = with_article(_item(), article, meta)
    assert merged.content_source == "article" and merged.article_status is None
    assert merged.summary == "The city library will stay open late."  # the feed's summary stays
    assert merged.content_text == article.content_text
    assert (merged.title, merged.authors, merged.published_at) == (
        "City library extends opening hours for exam season", ["Maria Gomez"], "2024-05-20T06:00:00Z")
    assert merged.url == "http://127.0.0.1/news/library-hours"  # canonical, tracking removed
    assert merged.content_hash != _item().content_hash
    own = with_article(_item(title="Own title", authors=["Feed Author"], published_at="2024-05-19T00:00:00Z"),
                       article, meta)
    assert (own.title, own.authors, own.published_at) == ("Own title", ["Feed Author"], "2024-05-19T00:00:00Z")
    assert marked(_item(), "pending").article_status == "pending"
    assert marked(_item(), "pending").content_source == "feed"


def test_outcomes_and_backoff() -> None:
    from ingest.models import FeedSpec
    from ingest.settings import Settings
    from workers.article.complete import apply_outcome, follow_up_delay, wants_page
    from workers.article.fetch import PageOutcome

    assert [follow_up_delay(n, 5.0) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    item = _item()
    assert apply_outcome(item, PageOutcome("failed", error="503"), last_try=False).article_status == "pending"
    assert apply_outcome(item, PageOutcome("failed", error="503"), last_try=True).article_status == "failed"
    for final in ("paywalled", "robots", "refused", "too_large", "empty"):
        out = apply_outcome(item, PageOutcome(final), last_try=False)
        assert (out.content_source, out.article_status, out.content_text) == ("feed", final, item.content_text)
    shorter = extract_article(b"<html><body><article><p>Two words.</p></article></body></html>", "http://a/x")
    assert shorter is not None
    kept = apply_outcome(item, PageOutcome("ok", article=shorter, meta=PageMeta()), last_try=False)
    assert kept.article_status == "empty" and kept.content_source == "feed"  # the page says less
    on = Settings(full_text="auto")
    assert wants_page(item, FeedSpec("f", "http://f/"), on)
    assert not wants_page(item, FeedSpec("f", "http://f/", full_text="off"), on)  # the feed's own mode wins
    assert wants_page(item, FeedSpec("f", "http://f/", full_text="always"), Settings(full_text="off"))


def test_a_pushed_document_has_its_own_page_deadline() -> None:
    from ingest.settings import Settings
    from workers.article.complete import page_deadline

    settings = Settings(full_text_deadline=10.0, push_full_text_deadline=0.0)
    assert page_deadline(settings, pushed=False) == 10.0
    assert page_deadline(settings, pushed=True) == 0.0
    assert page_deadline(Settings(push_full_text_deadline=2.5), pushed=True) == 2.5


async def test_a_deadline_of_zero_fetches_no_page_and_marks_the_wanted_items_pending() -> None:
    """A push (#21): no page is fetched before delivery; what wants one goes out pending."""
    from typing import Any, cast

    from ingest.models import FeedSpec
    from ingest.settings import Settings
    from workers.article.complete import complete_items

    class NoFetch:
        async def page(self, url: str) -> Any:
            raise AssertionError(f"{url} fetched before delivery")

    long_text = "word " * 200
    items = [_item(id="teaser"), _item(id="whole", content_text=long_text, summary=long_text),
             _item(id="nolink", link=None)]
    out = await complete_items(items, FeedSpec(feed_id="f", url="http://f/"), cast(Any, NoFetch()),
                               Settings(full_text="auto"), deadline=0.0)
    assert [(i.id, i.article_status, i.content_source) for i in out] == [
        ("teaser", "pending", "feed"), ("whole", None, "feed"), ("nolink", None, "feed")]
