"""Types that flow between the stages; no I/O here.

    FeedSpec ──fetch──> Fetched | NotModified | FetchFailed
                          │
                        Fetched ──parse──> (feedparser result) ──normalize──> Item
                                                                    │
                                            deliver ──> DeliveryResult

Items are frozen dataclasses that orjson serializes natively, in field order,
so the JSON on the stream, on the channels and in storage is one and the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "DeliveryResult",
    "Enclosure",
    "FeedSpec",
    "FetchFailed",
    "FetchResult",
    "Fetched",
    "Item",
    "NotModified",
    "feed_id_for_url",
    "item_from_json",
    "item_to_json",
    "short_hash",
]


def short_hash(text: str, size: int = 16) -> str:
    """Hex digest of `size` bytes; blake2b is fast and stable across machines and runs."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=size).hexdigest()


def feed_id_for_url(canonical_url: str) -> str:
    """A feed's id: 64 bits of its canonical URL's hash, short enough for channel names."""
    return short_hash(canonical_url, 8)


@dataclasses.dataclass(frozen=True)
class FeedSpec:
    """What a worker needs to know of a feed to fetch and label its items."""

    feed_id: str  # stable id (hash of the canonical URL it was first known by)
    url: str  # URL to fetch
    title: str = ""  # last known title, used until the feed declares one
    tags: tuple[str, ...] = ()  # user-given tags: items are also published on tag channels
    full_text: str = ""  # article pages: "off" | "auto" | "always"; "" = the `full_text` setting (#15)


@dataclasses.dataclass(frozen=True)
class Fetched:
    """A successful HTTP response carrying a body to parse."""

    url: str  # URL that was requested
    final_url: str  # URL after redirects: relative links resolve against it
    status: int  # HTTP status of the final response
    headers: Mapping[str, str]  # response headers (content type, caching, encoding hints)
    body: bytes  # decoded transfer encoding (gzip, br), raw bytes otherwise
    fetched_at: str  # ISO 8601 UTC time the response arrived
    permanent_url: str | None = None  # where only-permanent (301/308) redirects led, if any


@dataclasses.dataclass(frozen=True)
class NotModified:
    """304: the feed did not change since the validators we sent."""

    url: str  # URL that was requested
    headers: Mapping[str, str]  # response headers (caching hints)
    fetched_at: str  # ISO 8601 UTC
    permanent_url: str | None = None  # as in Fetched


@dataclasses.dataclass(frozen=True)
class FetchFailed:
    """No usable body: an error status, a timeout, a refused URL, a network failure."""

    url: str  # URL that was requested
    error: str  # one line for people: what went wrong
    fetched_at: str  # ISO 8601 UTC
    status: int | None = None  # HTTP status when the server answered
    retry_after: float | None = None  # seconds the server asked us to wait (429/503)
    network: bool = False  # DNS or connection failure: may be our own outage, not the feed's
    refused: bool = False  # our URL guard refused it; retrying will not help
    permanent_url: str | None = None  # as in Fetched


FetchResult = Fetched | NotModified | FetchFailed


@dataclasses.dataclass(frozen=True)
class Enclosure:
    """A media file attached to an item (image, audio, video)."""

    url: str  # absolute URL
    type: str | None  # MIME type when declared
    length: int | None  # size in bytes when declared


@dataclasses.dataclass(frozen=True)
class Item:
    """The public item record (docs/record.md): one per new or changed entry."""

    id: str  # hash of feed_id + guid (else canonical link, else title + date)
    version: int  # 1 when new, +1 each time content_hash changes
    feed_id: str  # the feed it came from
    feed_url: str  # that feed's URL
    feed_title: str  # that feed's title
    url: str | None  # canonical article link: absolute, tracking parameters removed
    link: str | None  # the article link as published (absolute)
    guid: str | None  # the entry's own id as published
    title: str  # plain text
    authors: list[str]  # names
    published_at: str | None  # ISO 8601 UTC ("Z"); null when the entry has no date
    updated_at: str | None  # ISO 8601 UTC; null when the entry has no update date
    fetched_at: str  # ISO 8601 UTC time of the fetch that produced this version
    summary: str  # plain text
    content_html: str  # sanitized HTML, links absolute
    content_text: str  # plain text; paragraphs split by a blank line, exact repeats removed
    language: str | None  # BCP 47 tag, declared or detected; null when unknown
    categories: list[str]  # tags / categories as published
    enclosures: list[Enclosure]  # attached media
    content_hash: str  # hash of the normalized title and text
    cluster_id: str  # shared by near-duplicate copies of one story (id of the first copy seen)
    source: str | None = None  # agency credited at the end ("(Yonhap)"), else RSS <source>
    date_in_future: bool = False  # published/updated more than a day after fetched_at (kept)
    # The feed's user-given tags (FeedSpec.tags), so stream consumers can filter
    # by tag as the tag channels do; set by the pipeline, not the normalizer.
    tags: list[str] = dataclasses.field(default_factory=list)
    # Fields cut to fit the size caps (max_text_chars, max_content_chars, max_list_items),
    # by record field name; empty when the record is whole (#12).
    truncated: list[str] = dataclasses.field(default_factory=list)
    # Where content_html/content_text came from: "feed" (the entry itself) or "article"
    # (the article page, fetched and extracted; summary keeps the feed's text) (#15).
    content_source: str = "feed"
    # The article page's state when content_source is "feed" though the page was wanted:
    # "pending" (past the deadline, pushed (#21), or failed and retried: a new version follows),
    # "failed", "paywalled", "robots" (disallowed), "refused" (URL guard), "too_large",
    # "empty" (no story found); else null.
    article_status: str | None = None


def item_to_json(item: Item) -> bytes:
    return orjson.dumps(item)


def item_from_json(data: bytes | str) -> dict[str, Any]:
    """Records are handed on as dicts: consumers must accept fields added later."""
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise ValueError("item record is not a JSON object")
    return value


@dataclasses.dataclass(frozen=True)
class DeliveryResult:
    """What one feed's delivery did; returned by the arq job and shown by `enqueue --wait`."""

    feed_id: str
    feed_url: str
    entries: int  # entries in the feed document
    new: int  # items delivered with version 1
    updated: int  # items delivered with a higher version
    unchanged: int  # entries skipped because nothing changed
    publish_interval: float | None = None  # seconds between polls suggested by item dates
    feed_hint: float | None = None  # shortest interval the feed asks for (ttl, sy:update*)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
