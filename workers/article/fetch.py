"""The I/O shell: get an article page politely, then hand it to the pure readers.

The feed fetcher's own `conditional_get` does the request, so a page gets
what a feed gets: the URL guard on every redirect hop (a page that redirects
to a private address is refused before any connection), the size and time
limits, the service's User-Agent. Requests to one host are paced by a
HostPacer per worker process (settings `per_host_concurrency`,
`host_min_delay`). robots.txt is read once per origin and cached in Redis
(`<ns>:robots:<origin>`, TTL `full_text_robots_ttl`) so every worker shares it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.models import Fetched, FetchFailed
from ingest.poll.fetch import conditional_get
from ingest.poll.politeness import HostPacer
from ingest.settings import Settings
from workers.article.extract import ArticleText, extract_article
from workers.article.metadata import PageMeta, page_meta
from workers.article.policy import is_paywalled, robots_allows, robots_url

__all__ = ["ArticleFetcher", "PageOutcome"]

log = logging.getLogger(__name__)

# robots.txt that cannot be read (5xx, network) is "disallow all" (RFC 9309 §2.3.1.4),
# remembered only briefly; a missing one (4xx) is "allow all".
_UNREACHABLE = "User-agent: *\nDisallow: /\n"
_UNREACHABLE_TTL = 300
_NONE = "\x00none"
_ROBOTS_MAX_BYTES = 512 * 1024
_TOO_LARGE = "exceeds the limit of"  # in the fetcher's BodyTooLarge message
_PACERS: dict[tuple[int, float, float], HostPacer] = {}


@dataclass(frozen=True)
class PageOutcome:
    """What became of one article page. `status`: "ok", "failed" (worth another try),
    "refused" (URL guard), "too_large" (past `max_body_bytes`), "paywalled", "robots"
    (disallowed) or "empty" (no story)."""

    status: str
    article: ArticleText | None = None
    meta: PageMeta | None = None
    error: str = ""

    @property
    def retry(self) -> bool:
        return self.status == "failed"


def _pacer(settings: Settings) -> HostPacer:
    """One pacer per worker process and politeness setting, shared by all its jobs."""
    key = (settings.per_host_concurrency, settings.host_min_delay, settings.host_cooldown_cap)
    if key not in _PACERS:
        _PACERS[key] = HostPacer(*key)
    return _PACERS[key]


class ArticleFetcher:
    """Fetch, check and read article pages for one worker (cheap to build per job)."""

    def __init__(self, session: aiohttp.ClientSession, redis: aioredis.Redis, keys: Keys,
                 settings: Settings) -> None:
        self.session = session
        self.redis = redis
        self.queue: Any = None  # arq's pool, for deferred follow-ups (the worker sets it)
        self.keys = keys
        self.settings = settings
        self._robots: dict[str, asyncio.Task[str | None]] = {}  # one lookup per origin and job
        self.ignore_robots = tuple(h.strip().lower() for h in settings.full_text_ignore_robots_hosts.split(",")
                                   if h.strip())

    async def _get(self, url: str) -> Fetched | FetchFailed:
        host = (urlsplit(url).hostname or "").lower()
        async with _pacer(self.settings).slot(host):
            result = await conditional_get(self.session, url, self.settings)
        if isinstance(result, Fetched | FetchFailed):
            return result
        return FetchFailed(url=url, error=f"{url}: unexpected 304", fetched_at=result.fetched_at)

    async def robots_txt(self, page_url: str) -> str | None:
        """The origin's robots.txt (None: there is none), from Redis or the network; the
        pages of one feed document, fetched at once, share one lookup."""
        origin = robots_url(page_url)
        if origin not in self._robots:
            self._robots[origin] = asyncio.ensure_future(self._robots_txt(origin))
        return await asyncio.shield(self._robots[origin])

    async def _robots_txt(self, origin: str) -> str | None:
        key = f"{self.keys.ns}:robots:{origin}"
        cached = await self.redis.get(key)
        if cached is not None:
            text = cached.decode("utf-8", "replace") if isinstance(cached, bytes) else str(cached)
            return None if text == _NONE else text
        settings = self.settings
        result = await self._get(origin)
        ttl = settings.full_text_robots_ttl
        if isinstance(result, Fetched):
            text = result.body[:_ROBOTS_MAX_BYTES].decode("utf-8", "replace")
        elif result.status is not None and 400 <= result.status < 500:
            text = _NONE
        else:
            text, ttl = _UNREACHABLE, min(ttl, _UNREACHABLE_TTL)
        await self.redis.set(key, text, ex=ttl)
        return None if text == _NONE else text

    async def page(self, url: str) -> PageOutcome:
        """Fetch and read one article page; never raises for what a server does."""
        host = (urlsplit(url).hostname or "").lower()
        if host not in self.ignore_robots:
            robots = await self.robots_txt(url)
            if not robots_allows(robots, self.settings.user_agent, url, self.ignore_robots):
                return PageOutcome("robots", error=f"{url}: disallowed by robots.txt")
        result = await self._get(url)
        if isinstance(result, FetchFailed):
            if result.refused:
                return PageOutcome("refused", error=result.error)
            if _TOO_LARGE in result.error:  # BodyTooLarge: the page will not shrink on a retry
                return PageOutcome("too_large", error=result.error)
            if is_paywalled(result.status, b""):
                return PageOutcome("paywalled", error=result.error)
            return PageOutcome("failed", error=result.error)
        if is_paywalled(result.status, result.body):
            return PageOutcome("paywalled", error=f"{url}: behind a paywall or login; left alone")
        # Extraction is CPU work (~10-40 ms a page): a thread keeps the worker's loop
        # (its other jobs' Redis and HTTP I/O) responsive meanwhile.
        article, meta = await asyncio.to_thread(_read, result.body, result.final_url)
        if article is None:
            return PageOutcome("empty", meta=meta, error=f"{url}: no story found on the page")
        return PageOutcome("ok", article=article, meta=meta)


def _read(html: bytes, url: str) -> tuple[ArticleText | None, PageMeta]:
    return extract_article(html, url), page_meta(html, url)
