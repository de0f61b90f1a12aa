"""The main text of an article page, normalized like feed text.

trafilatura finds the story's paragraphs and drops navigation, related
links, share buttons, ads, comments and cookie banners (docs/full-text.md
says why trafilatura rather than readability-lxml). Its output then takes
the feed text's path: nh3 sanitizing, plain-text paragraphs, exact repeats
once (workers/normalize/clean.py). CPU-bound and pure: it runs in the worker
processes, never on the poller's loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import trafilatura

from workers.htmlguard import defuse_attribute_floods, defuse_attribute_floods_bytes
from workers.normalize.clean import dedupe_paragraphs, fix_mojibake, html_to_paragraphs, sanitize_html

__all__ = ["ArticleText", "article_of_paragraphs", "extract_article"]


@dataclass(frozen=True)
class ArticleText:
    """The story as the page tells it: sanitized HTML and its unique plain-text paragraphs."""

    content_html: str
    paragraphs: list[str]

    @property
    def content_text(self) -> str:
        return "\n\n".join(self.paragraphs)


def extract_article(html: bytes | str, url: str, iframe_hosts: frozenset[str] = frozenset()) -> ArticleText | None:
    """The page's main text, or None when no story could be found in it."""
    html = defuse_attribute_floods_bytes(html) if isinstance(html, bytes) else defuse_attribute_floods(html)
    try:
        extracted = trafilatura.extract(
            html, url=url, output_format="html", include_comments=False, include_tables=True,
            include_images=False, include_links=False, deduplicate=False, favor_precision=True,
        )
    except (ValueError, TypeError):  # markup lxml cannot take at all
        return None
    if not extracted:
        return None
    content_html = sanitize_html(fix_mojibake(extracted), url, iframe_hosts)
    paragraphs = dedupe_paragraphs(html_to_paragraphs(content_html))
    if not paragraphs:
        return None
    return article_of_paragraphs(paragraphs)


def article_of_paragraphs(paragraphs: list[str]) -> ArticleText:
    """The story from its plain-text paragraphs; the HTML form matches the text
    (repeated paragraphs once there too), so the paragraphs are all a cache keeps."""
    content_html = "".join(f"<p>{_escape(p)}</p>" for p in paragraphs)
    return ArticleText(content_html=content_html, paragraphs=paragraphs)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
