"""Broken feeds, generated: XML (RSS/Atom mutated), JSON Feed, HTML pages, dates and
encodings, through every pure stage (tests/fuzz/target.py). Bounded in examples
and time; tests/fuzz/README.md runs the same target for hours with atheris."""

from __future__ import annotations

import codecs
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.target import check_document

BOUNDED = settings(max_examples=80, deadline=3000, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PIECES = [
    "<script>x()</script>", "&amp;", "&#0;", "&#xD800;", "&#xDFFF;", "&#x110000;", "&#99999999999;",
    "&undefined;", "&lt;b&gt;", "<![CDATA[x]]>", "<!-- c -->", "<b>", "</i>", "\x00", "\u2028",
    "\ufeff", "é", "한국어", "😀", "<p>p</p><p>p</p>", "]]>", "<", ">", "&", '"', "'",
]
text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=6).map("".join)

DATES = st.one_of(
    st.sampled_from([
        "Mon, 06 Jan 2025 10:00:00 GMT", "Mon, 06 Jan 0000 10:00:00 GMT", "99999-01-06T10:00:00Z",
        "2025-01-06T10:00:00+99:99", "Mon, 06 Jan 2025 10:00:00 -2400", "2025-02-30T10:00:00Z",
        "2025/1/6 10:00", "Seg, 24 Set 2018 10:00:00 -0300", "21:21:00 KST", "", "yesterday",
        "1736157600", "20250106T100000Z",
    ]),
    st.builds(lambda y, m, d, z: f"{y:04d}-{m:02d}-{d:02d}T10:00:00{z}",
              st.integers(0, 99999), st.integers(0, 13), st.integers(0, 32),
              st.sampled_from(["Z", "+09:00", "-24:00", "+14:30", "+99:99", ""])),
)


@st.composite
def xml_documents(draw: Any) -> bytes:
    fmt = draw(st.sampled_from(["rss", "atom"]))
    items = []
    for i in range(draw(st.integers(0, 6))):
        title, body, date = draw(text), draw(text), draw(DATES)
        length = draw(st.sampled_from(["1", "-5", "10" * 16, "x", ""]))
        if fmt == "rss":
            items.append(f"<item><guid>{i}{draw(text)}</guid><title>{title}</title>"
                         f"<description>{body}</description><pubDate>{date}</pubDate>"
                         f'<enclosure url="http://e.example/{i}" length="{length}" type="a/b"/></item>')
        else:
            items.append(f"<entry><id>{i}</id><title type='html'>{title}</title>"
                         f"<content type='html'>{body}</content><updated>{date}</updated></entry>")
    if fmt == "rss":
        doc = f'<rss version="2.0"><channel><title>{draw(text)}</title>{"".join(items)}</channel></rss>'
    else:
        doc = f'<feed xmlns="http://www.w3.org/2005/Atom"><title>{draw(text)}</title>{"".join(items)}</feed>'
    encoding = draw(st.sampled_from(["utf-8", "iso-8859-1", "windows-1251", "shift_jis", "utf-16",
                                     "gb2312", "bogus-enc"]))
    prolog = draw(st.sampled_from([
        f'<?xml version="1.0" encoding="{encoding}"?>\n', "",
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY e "entity">\n]>\n',
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + "A" * 1000 + '">\n]>\n',
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY x SYSTEM "file:///etc/passwd">\n]>\n',
    ]))
    if "&" in prolog:
        doc = doc.replace("</title>", "&e;&a;&x;</title>", 1)
    real = encoding if encoding not in ("bogus-enc",) else "utf-8"
    raw = (prolog + doc).encode(draw(st.sampled_from([real, "utf-8", "latin-1"])), errors="replace")
    # Damage: cut it short, or flip bytes.
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1:]
    if draw(st.booleans()):
        raw = draw(st.sampled_from([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, b""])) + raw
    return raw


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), text),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=10,
)


@st.composite
def json_feeds(draw: Any) -> bytes:
    import json

    items = []
    for i in range(draw(st.integers(0, 5))):
        item: dict[str, Any] = {"id": draw(st.one_of(st.just(str(i)), json_values))}
        for key in ("title", "content_html", "content_text", "url", "date_published", "authors",
                    "tags", "attachments", "image", "summary"):
            if draw(st.booleans()):
                item[key] = draw(st.one_of(json_values, text, DATES))
        items.append(item)
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": draw(text), "items": items}
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):  # a lone surrogate escape, which orjson refuses
        raw = raw.replace(b'"title"', b'"title\\ud800"', 1)
    return raw


html_pages = st.builds(
    lambda head, body: f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode(),
    text, text)


@BOUNDED
@given(xml_documents())
def test_broken_xml_feeds_keep_the_contract(body: bytes) -> None:
    check_document(body)


@BOUNDED
@given(json_feeds())
def test_broken_json_feeds_keep_the_contract(body: bytes) -> None:
    check_document(body, {"content-type": "application/feed+json"})


@BOUNDED
@given(html_pages, st.sampled_from(["text/html", "application/rss+xml", ""]))
def test_html_pages_are_refused_or_keep_the_contract(body: bytes, content_type: str) -> None:
    check_document(body, {"content-type": content_type} if content_type else {})


@BOUNDED
@given(st.binary(max_size=2000), st.sampled_from(["", "text/xml; charset=utf-8", "application/json"]))
def test_arbitrary_bytes_keep_the_contract(body: bytes, content_type: str) -> None:
    check_document(body, {"content-type": content_type} if content_type else {})
