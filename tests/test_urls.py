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
        ("", "https://ex.com/", None),
        (None, None, None),
    ],
)
def test_canonical_url(link: str | None, base: str | None, expected: str | None) -> None:
    assert canonical_url(link, base) == expected
