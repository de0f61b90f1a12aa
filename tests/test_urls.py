from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.urls import _normalized, _simple_canonical, absolute_url, canonical_url
from tests.conftest import DATA_DIR


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        ("HTTP://Example.COM:80/a/./b/../c", None, "http://example.com/a/c"),
        ("https://example.com:443/x#section-2", None, "https://example.com/x"),
        ("https://ex.com/a?id=5&utm_source=rss&utm_medium=feed", None, "https://ex.com/a?id=5"),
        ("https://ex.com/a?fbclid=1&gclid=2&page=2", None, "https://ex.com/a?page=2"),
        ("/news/1", "https://ex.com/feed.xml", "https://ex.com/news/1"),
        ("story.html", "https://ex.com/dir/feed", "https://ex.com/dir/story.html"),
        ("//cdn.ex.com/x", "https://ex.com/", "https://cdn.ex.com/x"),
        ("https://ex.com/watch?v=abc", None, "https://ex.com/watch?v=abc"),
        # Medium marks feed clicks with ?source=rss-...; the article id is in the path.
        ("https://medium.com/@h/post-417d97952d42?source=rss-b1f3d322dadf------2", None,
         "https://medium.com/@h/post-417d97952d42"),
        ("https://ex.com/a?ref=rss&id=7", None, "https://ex.com/a?id=7"),
        ("https://ex.com/a?from=feed", None, "https://ex.com/a"),
        # The same names with other values may select content: kept.
        ("https://ex.com/search?source=tokyo", None, "https://ex.com/search?source=tokyo"),
        ("https://ex.com/a?ref=42", None, "https://ex.com/a?ref=42"),
        ("https://ex.com/a?rss=1&source=rssfeedparser", None,
         "https://ex.com/a?rss=1&source=rssfeedparser"),
        ("https://ex.com/view.php?ud=20200116000812&utm_source=rss&utm_medium=feed", None,
         "https://ex.com/view.php?ud=20200116000812"),
        ("", "https://ex.com/", None),
        (None, None, None),
    ],
)
def test_canonical_url(link: str | None, base: str | None, expected: str | None) -> None:
    assert canonical_url(link, base) == expected


# The shortcut in canonical_url (ingest/urls.py, _simple_canonical) must give what the
# full url-normalize path gives, for every URL it accepts.
_SEGMENT = st.from_regex(r"[A-Za-z0-9._~-]{1,8}", fullmatch=True)
_LABEL = st.from_regex(r"[a-z0-9-]{1,10}", fullmatch=True)
_PARAM = st.tuples(st.one_of(st.sampled_from(["utm_source", "fbclid", "source", "ref", "id", "page"]),
                             st.from_regex(r"[A-Za-z0-9._~-]{1,6}", fullmatch=True)),
                   st.one_of(st.sampled_from(["rss", "feed-x", "42", ""]),
                             st.from_regex(r"[A-Za-z0-9._~-]{0,6}", fullmatch=True)))


@st.composite
def _simple_shaped_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = ".".join(draw(st.lists(_LABEL, min_size=1, max_size=4)))
    port = draw(st.one_of(st.just(""), st.sampled_from([":80", ":443", ":8080", ":1"])))
    segments = draw(st.lists(st.one_of(_SEGMENT, st.sampled_from([".", "..", "", "a.b"])), max_size=5))
    path = "/" + "/".join(segments) + draw(st.sampled_from(["", "/"]))
    params = draw(st.lists(_PARAM, max_size=4))
    query = ("?" + "&".join(f"{k}={v}" for k, v in params)) if params else ""
    return f"{scheme}://{host}{port}{path}{query}"


@settings(max_examples=3000, deadline=None)
@given(_simple_shaped_urls())
def test_the_simple_url_shortcut_gives_what_url_normalize_gives(url: str) -> None:
    shortcut = _simple_canonical(url)
    if shortcut is not None:
        assert shortcut == _normalized(url)


def test_the_simple_url_shortcut_takes_common_links_and_leaves_the_rest() -> None:
    assert _simple_canonical("https://news.example/world/1.html?utm_source=rss") == \
        "https://news.example/world/1.html"
    assert _simple_canonical("http://127.0.0.1:8080/a/?id=3&fbclid=x") == "http://127.0.0.1:8080/a/?id=3"
    for other in ("https://News.example/", "https://news.example", "https://news.example:443/",
                  "https://news.example/a/../b", "https://news.example/a//b", "https://news.example/#x",
                  "https://news.example/%7Ea", "https://news.example/?flag", "https://user@news.example/"):
        assert _simple_canonical(other) is None, other
        assert canonical_url(other) == _normalized(other)


def test_canonical_links_of_every_stand_in_feed_are_the_full_paths() -> None:
    from ingest.errors import ParseError
    from workers.parse import parse_feed_bytes

    checked = 0
    for path in sorted((DATA_DIR / "feeds").iterdir()):
        if path.name.endswith(".expected.json"):
            continue
        try:
            parsed = parse_feed_bytes(path.read_bytes(), {}, "https://feeds.example/feed")
        except ParseError:  # the defect documents among them
            continue
        for entry in parsed["entries"]:
            for link in [entry.get("link"), *(d.get("href") for d in entry.get("links") or [])]:
                if isinstance(link, str) and link:
                    absolute = absolute_url(link, "https://feeds.example/feed")
                    assert absolute is not None
                    assert canonical_url(absolute) == _normalized(absolute), link
                    checked += 1
    assert checked > 20
