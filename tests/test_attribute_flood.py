"""An attribute flood is stopped at the parse deadline on any lxml (#19 item 1).

lxml 6.2 (libxml2 2.14) reads `attrib.items()` of an element with 60,000
attributes in ~10 s of C code, which SIGALRM cannot interrupt: the fast path
held the worker past its deadline until the liveness check killed it. The
fast reader now counts an element's attributes (linear) before reading them
and declines an element carrying more than its vocabulary allows; feedparser
then reads the document under the deadline, in Python, where the alarm
stops it. A million attributes overflow lxml's buffer limit and take the
same way. These run in this process with the deadline installed, on whatever
lxml is installed (`make test` on the lock, `make test-latest` on the newest).

The same flood inside HTML (an entry's escaped content or summary, an article
page) reached libxml2's HTML parser (~11 s for 60,000) and nh3 (~1.7 s), also
uninterruptible: workers/htmlguard.py keeps such a tag without its attributes
before either parser sees it, in one linear scan.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import lxml
import pytest

from bench.farm import FarmSpec, feed_body
from tests.conftest import DATA_DIR
from tests.fuzz.target import records_of
from tests.test_deadline import hostile_feed
from workers import deadline
from workers.article.extract import extract_article
from workers.article.metadata import page_meta
from workers.fastfeed import parse_fast
from workers.htmlguard import MAX_ATTRIBUTES, defuse_attribute_floods, defuse_attribute_floods_bytes
from workers.normalize.clean import html_to_paragraphs, sanitize_html
from workers.parse import parse_feed_bytes

DEADLINE = 2.0


@pytest.fixture
def armed_deadline() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGALRM)
    assert deadline.install()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        deadline._STATE.installed = False


@pytest.mark.parametrize("count", [60_000, 1_000_000])
def test_the_fast_reader_declines_an_attribute_flood_before_reading_it(count: int) -> None:
    body = hostile_feed(count)
    began = time.monotonic()
    assert parse_fast(body, {"content-type": "application/rss+xml"}) is None
    # Declining is a count, not a read: far inside the deadline (the unguarded read
    # took ~10 s on lxml 6.2 for 60,000).
    assert time.monotonic() - began < DEADLINE, lxml.__version__


@pytest.mark.parametrize("count", [60_000, 1_000_000])
def test_an_attribute_flood_is_stopped_at_the_parse_deadline(count: int, armed_deadline: None) -> None:
    body = hostile_feed(count)
    token = deadline.start(DEADLINE)
    began = time.monotonic()
    try:
        with pytest.raises(deadline.ParseDeadlineExceeded), deadline.section():
            parse_feed_bytes(body, {"content-type": "application/rss+xml"}, "http://127.0.0.1/hostile.xml")
    finally:
        deadline.current_reset(token)
    # The alarm fired and was obeyed: not the minutes of an unbounded parse, nor C
    # code running on past it (loose bound: a shared machine).
    assert DEADLINE <= time.monotonic() - began < DEADLINE + 5, lxml.__version__


def _flood_tag(count: int, value: str = "x>") -> str:
    """A tag of `count` attributes whose values hold `>`: a scan for `[^<>]` runs misses it."""
    return "<div " + " ".join(f'a{i}="{value}"' for i in range(count)) + ">"


STORY = "<p>The story's first paragraph.</p><p>And its second.</p>"


@pytest.mark.parametrize("count", [60_000, 1_000_000])
def test_an_html_attribute_flood_reaches_no_parser(count: int, armed_deadline: None) -> None:
    fragment = f"<p>Lead.</p>{_flood_tag(count)}{STORY}</div>"
    token = deadline.start(DEADLINE)
    try:
        with deadline.section():  # the deadline would stop a Python loop; C it cannot
            paragraphs = html_to_paragraphs(sanitize_html(fragment, "https://news.example/"))
            raw = html_to_paragraphs(fragment)  # a summary is read without sanitizing first
    finally:
        deadline.current_reset(token)
    expected = ["Lead.", "The story's first paragraph.", "And its second."]
    assert paragraphs == expected and raw == expected


def test_a_feed_entry_carrying_an_html_flood_is_delivered_with_its_text(armed_deadline: None) -> None:
    # 400 attributes: past the flood limit, within the raw field cap (workers/limits.py)
    escaped = f"<p>Lead.</p>{_flood_tag(400)}{STORY}</div>".replace("&", "&amp;").replace("<", "&lt;")
    body = (f'<rss version="2.0"><channel><title>F</title><item><guid>g1</guid><title>T</title>'
            f"<description>{escaped}</description></item></channel></rss>").encode()
    token = deadline.start(DEADLINE)
    try:
        with deadline.section():
            [record] = records_of(body)
    finally:
        deadline.current_reset(token)
    assert record.content_text == "Lead.\n\nThe story's first paragraph.\n\nAnd its second."


def test_an_article_page_carrying_a_flood_is_read(armed_deadline: None) -> None:
    words = " ".join(["Word"] * 120)
    page = (f"<html><head><title>Headline</title></head><body><article><h1>Headline</h1>"
            f"{_flood_tag(60_000)}<p>{words}.</p><p>{words} again.</p></div></article></body></html>").encode()
    token = deadline.start(DEADLINE)
    try:
        with deadline.section():
            article = extract_article(page, "https://news.example/a")
            meta = page_meta(page, "https://news.example/a")
    finally:
        deadline.current_reset(token)
    assert article is not None and "Word Word" in article.content_text
    assert meta.headline == "Headline"


@pytest.mark.parametrize("fragment", [
    "", "plain text", "a < b and c > d", "<p>x</p>", "<!-- <b c d> --><p>", "</div>", "<a href='x>y'>z</a>",
    '<img src="data:image/png;base64,' + "A" * 100_000 + '">', "<br/><hr />", "<a b=c/d e>", "<p",
    "<div " + " ".join(f"a{i}" for i in range(MAX_ATTRIBUTES)) + ">",
])
def test_markup_without_a_flood_is_left_exactly_as_it_was(fragment: str) -> None:
    assert defuse_attribute_floods(fragment) == fragment
    assert defuse_attribute_floods_bytes(fragment.encode()) == fragment.encode()


def test_every_fixture_and_farm_document_is_left_exactly_as_it_was() -> None:
    documents = [p.read_bytes() for p in sorted(DATA_DIR.rglob("*")) if p.suffix in (".xml", ".html", ".json")]
    spec = FarmSpec(feeds=4, items=30)
    documents += [feed_body(spec, feed, 0) for feed in range(4)]
    assert len(documents) > 20
    for document in documents:
        assert defuse_attribute_floods_bytes(document) == document
        text = document.decode("utf-8", "replace")
        assert defuse_attribute_floods(text) == text


def test_one_attribute_past_the_limit_is_a_flood() -> None:
    tag = "<div " + " ".join(f"a{i}" for i in range(MAX_ATTRIBUTES + 1)) + ">"
    assert defuse_attribute_floods(f"x{tag}y</div>") == "x<div>y</div>"
    assert defuse_attribute_floods(_flood_tag(300, "b'c<d>e")) == "<div>"
