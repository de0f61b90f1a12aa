from __future__ import annotations

import pytest

from ingest.urls import canonical_url


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
