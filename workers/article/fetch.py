"""The I/O shell: get an article page politely, then hand it to the pure readers.

The feed fetcher's own `conditional_get` does the request, so a page gets
what a feed gets: the URL guard on every redirect hop (a page that redirects
to a private address is refused before any connection), the size and time
limits, the service's User-Agent. Requests to one host take one of its
slots in Redis (ingest/poll/hostslots.py: `per_host_concurrency` in flight,
`host_min_delay` apart), shared by every worker process and by the pollers'
polls of that host. robots.txt is read once per origin and cached in Redis
(`<ns>:robots:<origin>`, TTL `full_text_robots_ttl`) so every worker shares it.

A page fetched again (its entry changed, a follow-up try) is asked for
conditionally: its validators and what was read from it are kept in Redis
(workers/article/pagecache.py, `full_text_page_ttl`), and a 304 reuses that.

Reading a page (trafilatura, the page's metadata) is CPU work that a hostile
page can stretch for minutes. It runs on the worker's main thread as a
deadline section of its own (workers/deadline.py): SIGALRM stops it after
`parse_deadline` seconds, the page counts as `too_slow`
(`article_deadline_exceeded` in <ns>:stats) and the item keeps its feed's
text. A thread could not be stopped (#15).
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
from ingest.models import Fetched, FetchFailed, FetchResult, NotModified
from ingest.poll.fetch import conditional_get
from ingest.poll.hostslots import HostSlots
from ingest.settings import Settings
from workers import deadline
from workers.article.extract import ArticleText, extract_article
from workers.article.metadata import PageMeta, page_meta
from workers.article.pagecache import KEPT_STATUSES, KeptPage, decode_page, encode_page, page_hash, validators
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


@dataclass(frozen=True)
class PageOutcome:
    """What became of one article page. `status`: "ok", "failed" (worth another try),
    "refused" (URL guard), "too_large" (past `max_body_bytes`), "too_slow" (reading it
    ran past `parse_deadline`), "paywalled", "robots" (disallowed) or "empty" (no story).
    `not_modified`: the page answered 304 and what was read last time was reused."""

    status: str
    article: ArticleText | None = None
    meta: PageMeta | None = None
    error: str = ""
    not_modified: bool = False

    @property
    def retry(self) -> bool:
        return self.status == "failed"


class ArticleFetcher:
    """Fetch, check and read article pages for one worker (cheap to build per job)."""

    def __init__(self, session: aiohttp.ClientSession, redis: aioredis.Redis, keys: Keys,
                 settings: Settings) -> None:
        self.session = session
        self.redis = redis
        self.queue: Any = None  # arq's pool, for deferred follow-ups (the worker sets it)
        self.keys = keys
        self.settings = settings
        self.slots = HostSlots.from_settings(redis, keys, settings)
        self._robots: dict[str, asyncio.Task[str | None]] = {}  # one lookup per origin and job
        self.ignore_robots = tuple(h.strip().lower() for h in settings.full_text_ignore_robots_hosts.split(",")
                                   if h.strip())

    async def _get(self, url: str, kept: KeptPage | None = None) -> FetchResult:
        host = (urlsplit(url).hostname or "").lower()
        async with self.slots.slot(host, article=True):
            return await conditional_get(self.session, url, self.settings,
                                         etag=kept.etag if kept else None,
                                         last_modified=kept.last_modified if kept else None)

    async def robots_txt(self, page_url: str) -> str | None:
        """The origin's robots.txt (None: there is none), from Redis or the network; the
        pages of one feed document, fetched at once, share one lookup."""
        origin = robots_url(page_url)
        if origin not in self._robots:
            self._robots[origin] = asyncio.ensure_future(self._robots_txt(origin))
        return await asyncio.shield(self._robots[origin])

    async def _robots_txt(self, origin: str) -> str | None:
        key = self.keys.robots(origin)
        cached = await self.redis.get(key)
        if cached is not None:
            text = cached.decode("utf-8", "replace") if isinstance(cached, bytes) else str(cached)
            return None if text == _NONE else text
        settings = self.settings
        result = await self._get(origin)
        ttl = settings.full_text_robots_ttl
        if isinstance(result, NotModified):  # we sent no validators: a confused server
            result = FetchFailed(url=origin, error=f"{origin}: unexpected 304", fetched_at=result.fetched_at)
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
        kept = await self._kept(url)
        result = await self._get(url, kept)
        if isinstance(result, NotModified):
            if kept is None:  # we sent no validators: a confused server; try again later
                return PageOutcome("failed", error=f"{url}: unexpected 304")
            return PageOutcome(kept.status, article=kept.article, meta=kept.meta, not_modified=True,
                               error="" if kept.status == "ok" else f"{url}: no story found on the page")
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
        read = _read_bounded(result.body, result.final_url, self.settings.parse_deadline)
        if read is None:
            await self.redis.hincrby(self.keys.stats, "article_deadline_exceeded", 1)
            log.warning("%s: reading the page ran past %g s (parse_deadline); the feed's text stays",
                        url, self.settings.parse_deadline)
            return PageOutcome("too_slow", error=f"{url}: reading the page ran past the parse deadline")
        article, meta = read
        outcome = (PageOutcome("empty", meta=meta, error=f"{url}: no story found on the page") if article is None
                   else PageOutcome("ok", article=article, meta=meta))
        await self._keep(url, result, outcome)
        return outcome

    async def _kept(self, url: str) -> KeptPage | None:
        if self.settings.full_text_page_ttl <= 0:
            return None
        raw = await self.redis.get(self.keys.article_page(page_hash(url)))
        return decode_page(raw if isinstance(raw, bytes) else None)

    async def _keep(self, url: str, result: Fetched, outcome: PageOutcome) -> None:
        """Keep the page's validators and what was read, when it sent validators."""
        etag, last_modified = validators(result.headers)
        ttl = self.settings.full_text_page_ttl
        if ttl <= 0 or not (etag or last_modified) or outcome.status not in KEPT_STATUSES \
                or outcome.meta is None:
            return
        kept = KeptPage(etag=etag, last_modified=last_modified, status=outcome.status,
                        article=outcome.article, meta=outcome.meta)
        await self.redis.set(self.keys.article_page(page_hash(url)), encode_page(kept), ex=ttl)


def _read_bounded(html: bytes, url: str, seconds: float) -> tuple[ArticleText | None, PageMeta] | None:
    """Read the page on this (the main) thread within a deadline of its own: None when it
    ran past `seconds`. Without a deadline installed (a worker not in a main thread) it
    simply runs. It blocks the worker's event loop meanwhile, as a feed's parse does: a
    news page takes ~60-100 ms, and the GIL would hold a thread's other work back anyway."""
    token = deadline.start(seconds)
    try:
        with deadline.section():
            return extract_article(html, url), page_meta(html, url)
    except deadline.ParseDeadlineExceeded:
        return None
    finally:
        deadline.current_reset(token)
