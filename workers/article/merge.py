"""An item with its article page's story: pure, so the rules are tested on values.

The page's text replaces the feed's content (the feed's summary stays in
`summary`); the page's metadata fills only what the feed left empty; the
hash is taken over the new text, so the item becomes a new version and
clustering compares full texts.
"""

from __future__ import annotations

import dataclasses

from ingest.models import Item, short_hash
from ingest.urls import canonical_url, http_url
from workers.article.extract import ArticleText
from workers.article.metadata import PageMeta
from workers.normalize.authors import byline_names, closing_credit

__all__ = ["marked", "with_article"]


def with_article(item: Item, article: ArticleText, meta: PageMeta) -> Item:
    """`item` with the page's text and, where the feed had none, the page's metadata."""
    text = article.content_text
    title = item.title or meta.headline
    return dataclasses.replace(
        item,
        title=title,
        url=item.url or http_url(canonical_url(meta.canonical)),
        authors=item.authors or meta.authors or byline_names(article.paragraphs),
        published_at=item.published_at or meta.published_at,
        updated_at=item.updated_at or meta.updated_at,
        content_html=article.content_html,
        content_text=text,
        content_hash=short_hash(f"{title}\n{text}"),
        source=closing_credit(article.paragraphs) or item.source,
        content_source="article",
        article_status=None,
    )


def marked(item: Item, status: str) -> Item:
    """`item` with the feed's text, saying why the page's is not there (yet)."""
    return dataclasses.replace(item, content_source="feed", article_status=status)
