"""The fast XML path (workers/fastfeed.py) against feedparser, document by document.

For every document here either the fast reader declines (feedparser reads it,
as before) or its result equals feedparser's: entry and feed dicts byte for
byte (so entry fingerprints are equal and a stored entry is not even
renormalized), and the records normalize_entry makes of them field by field
(tests/fastdiff.py). Documents: the stand-in feeds, the format and defect
fixtures, the real-publisher corpus when present, the benchmark farm's RSS and
Atom (several seeds and rounds; these must all take the fast path, or it buys
nothing), the hostile documents of tests/test_hostile.py, and generated RSS and
Atom documents (hypothesis, bounded).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.farm import FarmSpec, feed_body
from tests.conftest import DATA_DIR
from tests.corpus import FEEDS_DIR, corpus_feeds, require_corpus
from tests.fastdiff import compare
from tests.test_hostile import ODD_ENTRIES, _billion_laughs, _item, _quadratic, _rss
from workers.fastfeed import parse_fast
from workers.parse import parse_feed_bytes

sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))

FIXTURES = sorted(
    p for sub in ("feeds", "formats", "defects", "clusters") for p in (DATA_DIR / sub).iterdir()
    if p.suffix in (".xml", ".atom", ".rss") and not p.name.endswith(".expected.json")
) + [DATA_DIR / "seed-yonhap.xml"]

# Fixtures the fast reader must leave to feedparser, and why (it must not guess).
MUST_DECLINE = {
    "rss1-rdf-bom.xml": "RSS 1.0 / RDF",
    "atom10-wordpress-xml-base.xml": "xml:base",
    "atom10-xml-base.xml": "xml:base",
    "atom03.xml": "Atom 0.3",
    "rss090.xml": "RSS 0.90 (RDF)",
    "rss1-dc.xml": "RSS 1.0",
    "declared-utf8-is-cp1251.xml": "bytes contradict the declared encoding",
    "declared-utf8-is-euc-kr.xml": "bytes contradict the declared encoding",
}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_fast_path_equals_feedparser(path: Path) -> None:
    took = compare(path.read_bytes())
    if path.name in MUST_DECLINE:
        assert not took, f"{path.name} should be left to feedparser: {MUST_DECLINE[path.name]}"


def test_a_charset_header_is_honoured_alike() -> None:
    body = (DATA_DIR / "formats" / "euc-kr.xml").read_bytes()
    compare(body, {"Content-Type": "text/xml; charset=utf-8"})
    compare(body, {"Content-Type": "text/html"})
    farm = feed_body(FarmSpec(feeds=2, items=3), 0, 0)
    assert compare(farm, {"Content-Type": "application/rss+xml"})
    assert compare(farm, {"Content-Type": "text/html"})  # feedparser's bozo, same entries
    assert not compare(farm, {"Content-Language": "de"})  # feedparser's base language: left to it


@pytest.mark.parametrize("name", corpus_feeds())
def test_corpus_fast_path_equals_feedparser(name: str) -> None:
    require_corpus()
    compare((FEEDS_DIR / name).read_bytes())


@pytest.mark.parametrize("seed,round_", [(1, 0), (1, 2), (7, 1), (42, 3)])
def test_farm_documents_take_the_fast_path_and_equal_feedparser(seed: int, round_: int) -> None:
    spec = FarmSpec(feeds=6, items=12, seed=seed)
    for feed in range(spec.feeds):  # even RSS 2.0, odd Atom 1.0
        assert compare(feed_body(spec, feed, round_), {"Content-Type": "application/xml"}), feed


HOSTILE = {
    "quadratic blow-up": _quadratic(1000, 2000),
    "billion laughs": _billion_laughs(),
    "ordinary entity declarations": _rss(_item("e", title="A&nbsp;B"),
                                          '<!DOCTYPE rss [\n<!ENTITY nbsp "&#160;">\n]>\n'),
    "external entity": _rss(_item("x", description="&xxe;"),
                            '<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'),
    "undeclared entity": _rss(_item("u", title="A &nbsp; B")),
    "malformed": _rss(_item("m", title="<b>unclosed")),
    "bad utf-8 byte": _rss(_item("b", title="Grüße aus Köln")).replace("ü".encode(), b"\xff"),
    "15 MB text node": _rss(_item("huge", description="x" * 15_000_000) + _item("ok")),
    "html page": b"<!DOCTYPE html><html><head><title>x</title></head><body><p>no feed</p></body></html>",
    "empty channel": _rss(""),
    **{f"odd entry: {k}": _rss(_item("before") + v + _item("after")) for k, v in ODD_ENTRIES.items()},
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_documents_fast_path_equals_feedparser_or_declines(case: str) -> None:
    took = compare(HOSTILE[case])
    if "entit" in case or case in ("malformed", "15 MB text node", "html page", "empty channel"):
        assert not took, f"{case}: must be left to the guards and feedparser"


def test_the_fast_path_resolves_no_external_entity(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("XXE-SECRET")
    body = _rss(_item("x", description="&xxe;"), f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>')
    assert parse_fast(body, {}) is None
    body = _rss(_item("x", description="x"), f'<!DOCTYPE rss SYSTEM "file://{secret}">')
    assert parse_fast(body, {}) is None


def test_a_failure_of_the_fast_reader_falls_back_on_feedparser(monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.fastfeed.elements as elements

    def broken(*args: Any) -> None:
        raise KeyError("a bug")

    body = feed_body(FarmSpec(feeds=2, items=3), 0, 0)
    expected = [dict(e) for e in parse_feed_bytes(body, {}, "https://x.example/", fast=False)["entries"]]
    monkeypatch.setitem(elements._ENTRY, "title", broken)
    assert parse_fast(body, {}) is None
    assert [dict(e) for e in parse_feed_bytes(body, {}, "https://x.example/")["entries"]] == expected


def test_fast_parser_off_sends_everything_to_feedparser() -> None:
    body = feed_body(FarmSpec(feeds=2, items=3), 0, 0)
    on: Any = parse_feed_bytes(body, {}, "https://x.example/")
    off: Any = parse_feed_bytes(body, {}, "https://x.example/", fast=False)
    assert "namespaces" in on and on["namespaces"] == {} and off["namespaces"] == {}
    assert [dict(e) for e in on["entries"]] == [dict(e) for e in off["entries"]]


# -- generated documents ------------------------------------------------------------------

TEXTS = st.one_of(
    st.sampled_from([
        "AT&amp;T &lt;b&gt;bold&lt;/b&gt; news", "Caf&#233; &#x2014; d&#xe9;j&#224; vu", "&#x80;&#x93;quoted&#x94;",
        "Ã©tÃ© mojibake", "<![CDATA[<p>CDATA <b>html</b> & more</p>]]>", "&lt;p&gt;one&lt;/p&gt;&lt;p&gt;two&lt;/p&gt;",
        "  padded  ", "", "plain text", "a &amp;amp; b", "&lt;script&gt;x()&lt;/script&gt;", "x &#60;y&#62; z",
        "&lt;em&gt;ok&lt;/em&gt; &amp;copy; 2024", "line\nbreak\r\nagain", "Ünïcödé 한국어 中文",
        "tag &lt;unknowntag&gt; here &lt;/unknowntag&gt;", "5 &lt; 6 and &amp;nbsp;",
    ]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30).map(escape),
)
DATES = st.sampled_from([
    "Mon, 06 Jan 2025 10:00:00 GMT", "Mon, 06 Jan 2025 10:00:00 +0900", "2025-01-06T10:00:00Z",
    "2025-01-06T10:00:00+09:00", "06 Jan 2025 10:00 KST", "2025/1/6 10:00:00", "yesterday", "",
    "Seg, 24 Set 2018 10:00:00 -0300", "2025-01-06", "Tue, 31 Feb 2025 10:00:00 GMT",
    "Mon, 06 Jan 99999 10:00:00 GMT", "1736157600",
])
URLS = st.sampled_from([
    "https://ex.example/a?x=1&amp;y=2", "http://ex.example/a?utm_source=rss&amp;id=3", "/relative/path",
    "javascript:alert(1)", "", "  https://ex.example/padded  ", "http:////ex.example/slashes",
    "https://ex.example/a&amp;copy;b", "urn:uuid:1234",
])
AUTHORS = st.sampled_from([
    "desk@wire.example (News Desk)", "News Desk <desk@wire.example>", "Kim Eun-jung", "",
    "a@b.example", "Jane Doe (jane@doe.example)",
])
LANGUAGES = ["en", "ko", "pt-BR", "de_DE", ""]
MIME = st.sampled_from(["audio/mpeg", "Image/JPEG", "", "video/mp4"])


def _maybe(flag: bool, text: str) -> str:
    return text if flag else ""


def _repeat(draw: Any, make: Any, most: int) -> str:
    return "".join(make() for _ in range(draw(st.integers(1, most))))


def _enclosure(draw: Any) -> str:
    length = draw(st.sampled_from(["1234", "", "x", "10000000000000000000000"]))
    return f"<enclosure url={quoteattr(draw(URLS))} type={quoteattr(draw(MIME))} length=\"{length}\"/>"


def _media(draw: Any) -> str:
    credit = _maybe(draw(st.booleans()), f'<media:credit scheme="urn:ebu">{draw(TEXTS)}</media:credit>')
    return (f'<media:content url={quoteattr(draw(URLS))} medium="image" type={quoteattr(draw(MIME))}>'
            f"{credit}</media:content><media:thumbnail url={quoteattr(draw(URLS))} width=\"80\"/>")


PERMALINK = st.sampled_from(["", ' isPermaLink="false"', ' isPermaLink="False"', ' isPermaLink="true"'])
DOMAIN = st.sampled_from(["", ' domain="http://c.example/"'])
RSS_PARTS: dict[str, Any] = {
    "title": lambda d: f"<title>{d(TEXTS)}</title>",
    "link": lambda d: _repeat(d, lambda: f"<link>{d(URLS)}</link>", 2),
    "guid": lambda d: f"<guid{d(PERMALINK)}>{d(URLS)}</guid>",
    "date": lambda d: f"<pubDate>{d(DATES)}</pubDate>",
    "dcdate": lambda d: f"<dc:date>{d(DATES)}</dc:date>",
    "desc": lambda d: f"<description>{d(TEXTS)}</description>",
    "content": lambda d: f"<content:encoded>{d(TEXTS)}</content:encoded>",
    "author": lambda d: _repeat(d, lambda: f"<author>{escape(d(AUTHORS))}</author>", 2),
    "creator": lambda d: f"<dc:creator>{escape(d(AUTHORS))}</dc:creator>",
    "cats": lambda d: _repeat(d, lambda: (
        f"<category{d(DOMAIN)}>{d(TEXTS)}</category>"), 3),
    "encs": lambda d: _repeat(d, lambda: _enclosure(d), 2),
    "media": _media,
    "source": lambda d: f'<source url="https://src.example/rss">{d(TEXTS)}</source>',
    "comments": lambda d: f"<comments>{d(URLS)}</comments><!-- c --><slash:comments>3</slash:comments>",
}


@st.composite
def rss_items(draw: Any) -> str:
    order = draw(st.permutations(list(RSS_PARTS)))
    lang = _maybe(draw(st.booleans()), ' xml:lang="fr"')
    return f"<item{lang}>" + "".join(RSS_PARTS[p](draw) for p in order if draw(st.booleans())) + "</item>"


@st.composite
def rss_documents(draw: Any) -> bytes:
    items = "".join(draw(st.lists(rss_items(), min_size=1, max_size=3)))
    channel = (
        f"<title>{draw(TEXTS)}</title><link>{draw(URLS)}</link><description>{draw(TEXTS)}</description>"
        + _maybe(draw(st.booleans()), f"<language>{draw(st.sampled_from(LANGUAGES))}</language>")
        + _maybe(draw(st.booleans()), "<ttl>60</ttl><sy:updatePeriod>hourly</sy:updatePeriod>"
                 "<sy:updateFrequency>2</sy:updateFrequency>")
        + _maybe(draw(st.booleans()), f"<managingEditor>{escape(draw(AUTHORS))}</managingEditor>")
        + _maybe(draw(st.booleans()), '<atom:link href="https://ex.example/f" rel="self" type="application/rss+xml"/>')
        + _maybe(draw(st.booleans()), f"<image><url>{draw(URLS)}</url><title>{draw(TEXTS)}</title>"
                 f"<link>{draw(URLS)}</link><width>88</width></image>")
        + _maybe(draw(st.booleans()), f"<lastBuildDate>{draw(DATES)}</lastBuildDate><generator>gen 1.0</generator>")
    )
    version = draw(st.sampled_from(["2.0", "0.91", "0.92", "2.0.1", "1.0"]))
    version_attr = draw(st.sampled_from(["version", "VERSION"]))
    lang = _maybe(draw(st.booleans()), ' xml:lang="en-GB"')
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<rss {version_attr}="{version}"{lang} xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/" '
        'xmlns:slash="http://purl.org/rss/1.0/modules/slash/">'
        f"<channel>{channel}{items}</channel></rss>"
    ).encode()


def _atom_link(draw: Any) -> str:
    rel = draw(st.sampled_from(["", ' rel="alternate"', ' rel="enclosure" length="99"', ' rel="related"']))
    mime = draw(st.sampled_from(["", ' type="text/html"', ' type="application/pdf"', ' type="html"']))
    return f"<link{rel}{mime} href={quoteattr(draw(URLS))}/>"


def _atom_author(draw: Any) -> str:
    parts = [f"<name>{escape(draw(AUTHORS))}</name>", "<email>a@b.example</email>", f"<uri>{draw(URLS)}</uri>"]
    return "<author>" + "".join(draw(st.lists(st.sampled_from(parts), max_size=3, unique=True))) + "</author>"


KINDS = st.sampled_from(["", ' type="text"', ' type="html"'])
CONTENT_LANG = st.sampled_from(["", ' xml:lang="ko"', ' xml:lang=""'])
ATOM_PARTS: dict[str, Any] = {
    "title": lambda d: f"<title{d(KINDS)}>{d(TEXTS)}</title>",
    "links": lambda d: _repeat(d, lambda: _atom_link(d), 3),
    "id": lambda d: f"<id>{d(URLS)}</id>",
    "published": lambda d: f"<published>{d(DATES)}</published>",
    "updated": lambda d: f"<updated>{d(DATES)}</updated>",
    "author": lambda d: _repeat(d, lambda: _atom_author(d), 2),
    "cats": lambda d: (f'<category term={quoteattr(d(TEXTS))} scheme="http://s.example/"/>'
                       '<category term="World" label="The World"/>'),
    "content": lambda d: f"<content{d(KINDS)}{d(CONTENT_LANG)}>{d(TEXTS)}</content>",
    "summary": lambda d: f"<summary{d(KINDS)}>{d(TEXTS)}</summary>",
}


@st.composite
def atom_entries(draw: Any) -> str:
    order = draw(st.permutations(list(ATOM_PARTS)))
    lang = _maybe(draw(st.booleans()), ' xml:lang="de"')
    return f"<entry{lang}>" + "".join(ATOM_PARTS[p](draw) for p in order if draw(st.booleans())) + "</entry>"


@st.composite
def atom_documents(draw: Any) -> bytes:
    entries = "".join(draw(st.lists(atom_entries(), min_size=1, max_size=3)))
    head = (
        f"<title>{draw(TEXTS)}</title><id>{draw(URLS)}</id>"
        f'<link rel="alternate" href={quoteattr(draw(URLS))}/><link rel="self" href="https://ex.example/atom"/>'
        + _maybe(draw(st.booleans()), f"<updated>{draw(DATES)}</updated>")
        + _maybe(draw(st.booleans()), f"<author><name>{escape(draw(AUTHORS))}</name></author>")
        + _maybe(draw(st.booleans()), f"<subtitle type=\"html\">{draw(TEXTS)}</subtitle>")
        + _maybe(draw(st.booleans()), '<generator uri="https://gen.example/" version="2">Gen</generator>')
    )
    lang = draw(st.sampled_from(["", ' xml:lang="en"', ' xml:lang="pt_BR"', ' xml:lang=""']))
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<feed xmlns="http://www.w3.org/2005/Atom"{lang}>{head}{entries}</feed>').encode()


BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@BOUNDED
@given(document=rss_documents())
def test_generated_rss_fast_path_equals_feedparser(document: bytes) -> None:
    compare(document)


@BOUNDED
@given(document=atom_documents())
def test_generated_atom_fast_path_equals_feedparser(document: bytes) -> None:
    compare(document)


KITCHEN_SINK_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/"
 xmlns:media="http://search.yahoo.com/mrss/" xmlns:atom="http://www.w3.org/2005/Atom"
 xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>
<title>Sink &amp; Co</title><link>https://sink.example/</link><description>All of it</description>
<language>en</language><ttl>30</ttl><sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>
<managingEditor>desk@sink.example (Desk)</managingEditor><webMaster>web@sink.example</webMaster>
<copyright>(c) Sink</copyright><generator>gen</generator><lastBuildDate>Mon, 06 Jan 2025 10:00:00 GMT</lastBuildDate>
<atom:link href="https://sink.example/rss" rel="self" type="application/rss+xml"/>
<image><url>https://sink.example/logo.png</url><title>Sink</title><link>https://sink.example/</link><width>88</width></image>
<!-- a comment between items -->
<item><title>One &lt;b&gt;bold&lt;/b&gt;</title><link>https://sink.example/1?a=1&amp;b=2</link>
<guid isPermaLink="false">sink-1</guid><pubDate>Mon, 06 Jan 2025 10:00:00 +0900</pubDate>
<description><![CDATA[<p>First <b>paragraph</b>.</p><p>Second.</p>]]></description>
<content:encoded>&lt;p&gt;Full text.&lt;/p&gt;</content:encoded><dc:creator>Kim Eun-jung</dc:creator>
<category domain="https://sink.example/c">World</category><category>Asia</category>
<enclosure url="https://sink.example/1.mp3" type="Audio/MPEG" length="1234"/>
<media:content url="https://sink.example/1.jpg" medium="image" type="image/jpeg"/>
<media:thumbnail url="https://sink.example/1t.jpg" width="80"/>
<source url="https://wire.example/rss">Wire</source><comments>https://sink.example/1#c</comments></item>
<item><title>Two</title><guid>https://sink.example/2</guid><dc:date>2025-01-06T10:00:00Z</dc:date>
<author>desk@sink.example (News Desk)</author><description>Plain &amp; simple.</description></item>
</channel></rss>"""

KITCHEN_SINK_ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en"><title type="text">Sink</title>
<subtitle type="html">&lt;em&gt;All&lt;/em&gt;</subtitle><id>urn:sink</id><updated>2025-01-06T10:00:00Z</updated>
<link rel="alternate" type="text/html" href="https://sink.example/"/><link rel="self" href="https://sink.example/atom"/>
<author><name>Desk</name><email>desk@sink.example</email></author><rights>(c)</rights><icon>/favicon.ico</icon>
<generator uri="https://gen.example/" version="2">Gen</generator>
<entry xml:lang="ko"><id>urn:sink:1</id><title type="html">One &amp;amp; only</title>
<link href="https://sink.example/1"/><link rel="enclosure" type="audio/mpeg" length="99" href="https://sink.example/1.mp3"/>
<published>2025-01-06T10:00:00+09:00</published><updated>2025-01-07T10:00:00+09:00</updated>
<author><name>Kim</name><uri>https://sink.example/kim</uri></author><author><name>Lee</name></author>
<category term="World" scheme="https://sink.example/c" label="The World"/>
<summary>Short.</summary><content type="html">&lt;p&gt;Long.&lt;/p&gt;</content></entry>
<entry><title>Two</title><id>urn:sink:2</id><updated>2025-01-06T10:00:00Z</updated><content>Text only.</content></entry>
</feed>"""


@pytest.mark.parametrize("document", [KITCHEN_SINK_RSS, KITCHEN_SINK_ATOM], ids=["rss", "atom"])
def test_every_element_of_the_vocabulary_takes_the_fast_path(document: bytes) -> None:
    assert compare(document)
