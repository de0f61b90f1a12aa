"""Adding a feed by URL: guard, fetch once, discover, register, hand the body on.

Shared by `ingest add` and `POST /api/v1/feeds`, so both refuse the same
URLs and register the same way. A web page that advertises feeds registers
those feeds; a feed registers itself and its first body goes to the workers
at once (the first poll can then be conditional, and later).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import aiohttp
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from ingest.errors import IngestError
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched, FetchFailed
from ingest.poll.discover import discover_feeds, looks_like_html
from ingest.poll.enqueue import enqueue_parse
from ingest.poll.fetch import check_scheme, conditional_get
from ingest.poll.registry import add_feed, load_feed
from ingest.push.discover import discover_push
from ingest.redis_conn import atomic_pipeline
from ingest.settings import Settings

__all__ = ["Added", "AddRequest", "NotAFeed", "add_from_url"]


class NotAFeed(IngestError):
    """The URL could not be fetched, or is a page that advertises no feed."""


@dataclass(frozen=True)
class AddRequest:
    url: str
    interval: float = 0  # seconds between polls; 0: adaptive
    tags: tuple[str, ...] = ()
    list_only: bool = False  # only report what a page advertises
    force: bool = False  # register even when the first fetch fails
    full_text: str = ""  # article pages for this feed: off/auto/always; "" = the setting (#15)


@dataclass(frozen=True)
class Added:
    """One feed found (and, unless list_only, registered)."""

    feed_id: str | None  # None when only listed
    url: str
    title: str
    kind: str  # rss, atom, json, ..., "feed" for a URL that is a feed itself
    created: bool  # False: it was already registered
    note: str = ""  # e.g. "fetch failed" when added with force


async def _register_fetched(
    settings: Settings, redis: aioredis.Redis, pool: ArqRedis, req: AddRequest, fetched: Fetched,
) -> tuple[str, bool]:
    keys = Keys.for_settings(settings)
    feed_id, created = await add_feed(redis, keys, req.url, interval=req.interval, tags=req.tags,
                                      full_text=req.full_text)
    state = await load_feed(redis, keys, feed_id)
    spec = FeedSpec(feed_id=feed_id, url=req.url, title=state.title if state else "",
                    tags=state.tags if state else req.tags,
                    full_text=state.full_text if state else req.full_text)
    await enqueue_parse(pool, spec, fetched)
    next_due = time.time() + max(req.interval or settings.default_interval, settings.min_interval)
    found = discover_push(fetched.headers, fetched.body, fetched.final_url)  # WebSub hub (#11)
    async with atomic_pipeline(redis) as pipe:
        pipe.hset(keys.feed(feed_id), mapping={
            "hub": found.hub, "self_url": found.self_url,
            "etag": fetched.headers.get("etag", ""),
            "last_modified": fetched.headers.get("last-modified", ""),
            "body_hash": hashlib.blake2b(fetched.body, digest_size=16).hexdigest(),
            "last_status": fetched.status, "last_fetch_at": fetched.fetched_at,
        })
        pipe.zadd(keys.schedule, {feed_id: int(next_due * 1000)})
        await pipe.execute()
    return feed_id, created


async def add_from_url(
    settings: Settings, redis: aioredis.Redis, pool: ArqRedis, session: aiohttp.ClientSession,
    req: AddRequest,
) -> list[Added]:
    """Register the feed at `req.url`, or the feeds the page there advertises.

    Raises URLRefused (the guard), NotAFeed (fetch failed without force, or a
    page without feeds).
    """
    check_scheme(req.url, settings)
    keys = Keys.for_settings(settings)
    result = await conditional_get(session, req.url, settings)
    if isinstance(result, FetchFailed):
        if not req.force:
            raise NotAFeed(f"{result.error} (not added; force adds it anyway)")
        feed_id, created = await add_feed(redis, keys, req.url, interval=req.interval, tags=req.tags,
                                          full_text=req.full_text)
        return [Added(feed_id, req.url, "", "feed", created, note="fetch failed")]
    if not isinstance(result, Fetched):  # pragma: no cover - no validators were sent
        raise NotAFeed(f"{req.url}: unexpected 304")
    if looks_like_html(result.body, result.headers.get("content-type", "")):
        found = discover_feeds(result.body, result.final_url)
        if not found:
            raise NotAFeed(f"{req.url} is a web page that advertises no feeds")
        if req.list_only:
            return [Added(None, f.url, f.title, f.kind, False) for f in found]
        out = []
        for feed in found:
            feed_id, created = await add_feed(redis, keys, feed.url, interval=req.interval, tags=req.tags,
                                              full_text=req.full_text)
            out.append(Added(feed_id, feed.url, feed.title, feed.kind, created))
        return out
    if req.list_only:
        return [Added(None, req.url, "", "feed", False)]
    feed_id, created = await _register_fetched(settings, redis, pool, req, result)
    return [Added(feed_id, req.url, "", "feed", created)]
