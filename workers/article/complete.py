"""Items made whole before delivery: the pipeline's hook (#15).

For each new or changed item whose mode asks for it (`should_fetch`), the
article page is fetched and read concurrently, all within one deadline
(`full_text_deadline`): each item is delivered once, complete. Past the
deadline, or when a page fails, the item goes out with the feed's text,
marked `article_status: "pending"`, and a deferred job (`fetch_article`)
tries again with backoff, at most `full_text_max_tries` times; its text
arrives as a new version. Paywalled, robots-disallowed, refused, too large,
too slow to read and empty pages are final: marked, never retried.

A pushed document (WebSub) has a deadline of its own, `push_full_text_deadline`,
0 by default: a push is there to be fresh, and a page fetch waits for its host's
politeness slot (`host_min_delay`, a second apart), so back-to-back pushes of
one publisher would each wait about a second (#21). Its items go out at once,
pending, and their first page try is a `fetch_article` job queued at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from arq.connections import ArqRedis

from ingest.models import FeedSpec, Item, item_to_json
from ingest.settings import Settings
from workers.article.fetch import ArticleFetcher, PageOutcome
from workers.article.merge import marked, with_article
from workers.article.policy import should_fetch, word_count

__all__ = ["FOLLOW_UP_TASK", "apply_outcome", "complete_items", "follow_up_delay", "page_deadline",
           "schedule_follow_ups", "wants_page"]

log = logging.getLogger(__name__)

FOLLOW_UP_TASK = "fetch_article"


def wants_page(item: Item, spec: FeedSpec, settings: Settings) -> bool:
    """Pure: does this item's feed mode (else the setting) ask for its article page?"""
    mode = spec.full_text or settings.full_text
    return should_fetch(mode, item.content_text or item.summary, settings.full_text_min_words, item.link)


def page_deadline(settings: Settings, pushed: bool) -> float:
    """Pure: seconds a document's items wait for their article pages before delivery
    (a pushed document's own deadline, else the poll's); 0: they do not wait."""
    return settings.push_full_text_deadline if pushed else settings.full_text_deadline


def follow_up_delay(attempt: int, base_seconds: float) -> float:
    """Pure: seconds before follow-up try `attempt` (1, 2, …): exponential, from `base_seconds`."""
    return float(base_seconds * 2 ** max(attempt - 1, 0))


def apply_outcome(item: Item, outcome: PageOutcome, last_try: bool) -> Item:
    """Pure: the item as the page's outcome makes it."""
    if outcome.status == "ok" and outcome.article and outcome.meta:
        own = item.content_text or item.summary
        if word_count(outcome.article.content_text) >= word_count(own):
            return with_article(item, outcome.article, outcome.meta)
        return marked(item, "empty")  # the page says less than the feed: keep the feed's
    if outcome.retry:
        return marked(item, "failed" if last_try else "pending")
    return marked(item, outcome.status)


async def _page(fetcher: ArticleFetcher, url: str) -> PageOutcome:
    try:
        return await fetcher.page(url)
    except (OSError, ValueError) as e:  # anything odd about one page costs that page only
        return PageOutcome("failed", error=f"{url}: {type(e).__name__}: {e}")


async def complete_items(items: Sequence[Item], spec: FeedSpec, fetcher: ArticleFetcher,
                         settings: Settings, deadline: float | None = None) -> list[Item]:
    """`items` with their article text where the page came within `deadline` seconds
    (default `full_text_deadline`); the others marked (pending ones are for
    `schedule_follow_ups`). With a deadline of 0 no page is fetched here: every item
    that wants one goes out pending at once."""
    seconds = settings.full_text_deadline if deadline is None else deadline
    wanted = [i for i, item in enumerate(items) if wants_page(item, spec, settings)]
    if not wanted:
        return list(items)
    if seconds <= 0:
        out = list(items)
        for i in wanted:
            out[i] = marked(items[i], "pending")
        return out
    tasks: dict[int, asyncio.Task[PageOutcome]] = {
        i: asyncio.create_task(_page(fetcher, items[i].link or "")) for i in wanted
    }
    done, late = await asyncio.wait(tasks.values(), timeout=seconds)
    for task in late:
        task.cancel()
    out = list(items)
    for i, task in tasks.items():
        if task in done:
            outcome = task.result()
            if outcome.status != "ok":
                log.info("feed %s: article page of %s: %s", spec.feed_id, items[i].link, outcome.error)
            out[i] = apply_outcome(items[i], outcome, last_try=settings.full_text_max_tries <= 1)
        else:
            log.info("feed %s: article page of %s not read within %.1f s; feed text first",
                     spec.feed_id, items[i].link, seconds)
            out[i] = marked(items[i], "pending")
    return out


async def schedule_follow_ups(redis: Any, spec: FeedSpec, delivered: Sequence[Item],
                              settings: Settings, tried: bool = True) -> int:
    """Enqueue a `fetch_article` job for each delivered item still pending: deferred
    (try 2) after a try here, at once (try 1) when no page was tried (`tried` False)."""
    if not isinstance(redis, ArqRedis):
        return 0
    count = 0
    for item in delivered:
        if item.article_status == "pending":
            record = item_to_json(item).decode()
            if tried:
                await redis.enqueue_job(FOLLOW_UP_TASK, _spec_args(spec), record, 2,
                                        _defer_by=follow_up_delay(1, settings.job_retry_seconds))
            else:
                await redis.enqueue_job(FOLLOW_UP_TASK, _spec_args(spec), record, 1)
            count += 1
    return count


def _spec_args(spec: FeedSpec) -> dict[str, Any]:
    return {"feed_id": spec.feed_id, "url": spec.url, "title": spec.title, "tags": list(spec.tags),
            "full_text": spec.full_text}
