"""The deferred job `fetch_article`: the article text of an item already delivered
with its feed's text, as a new version (#15).

It runs `full_text_max_tries - 1` times at most, with exponential backoff.
Whatever its last try finds is delivered as a new version: the article's
text, or the feed's text with the final `article_status` ("failed" after the
last try, "paywalled", "robots", ...), so no record stays "pending".
The item's stored state must still be the version that went out: when the
feed changed the entry meanwhile, that newer version had its own page
fetch, and this job stands down.
"""

from __future__ import annotations

import logging
from typing import Any

from ingest.models import Enclosure, FeedSpec, Item, item_from_json
from workers.article.complete import FOLLOW_UP_TASK, apply_outcome, follow_up_delay
from workers.article.fetch import ArticleFetcher
from workers.context import WorkerContext

__all__ = ["fetch_article", "item_of_record"]

log = logging.getLogger(__name__)


def item_of_record(record: dict[str, Any]) -> Item:
    """An Item from its JSON record (fields unknown to this version are ignored)."""
    names = set(Item.__dataclass_fields__)
    fields = {k: v for k, v in record.items() if k in names}
    fields["enclosures"] = [Enclosure(**e) for e in fields.get("enclosures") or []]
    return Item(**fields)


async def fetch_article(ctx: dict[str, Any], spec: dict[str, Any], record: str, attempt: int) -> dict[str, Any]:
    """Try the item's article page again; deliver its text as a new version when it comes."""
    app = WorkerContext.of(ctx)
    feed = FeedSpec(**{**spec, "tags": tuple(spec.get("tags") or ())})
    item = item_of_record(item_from_json(record))
    settings = app.settings
    fetcher = ArticleFetcher(app.session, app.redis, app.keys, settings)
    outcome = await fetcher.page(item.link or "")
    updated = apply_outcome(item, outcome, last_try=attempt >= settings.full_text_max_tries)
    if updated.article_status == "pending":
        delay = follow_up_delay(attempt, settings.job_retry_seconds)
        log.info("article page of %s: %s; try %d in %.0f s", item.link, outcome.error, attempt + 1, delay)
        await app.queue.enqueue_job(FOLLOW_UP_TASK, spec, record, attempt + 1, _defer_by=delay)
        return {"item": item.id, "article_status": "pending", "error": outcome.error}
    # A final state: the article's text, or the feed's text saying why not ("failed" after
    # the last try, "paywalled", ...). Either is delivered as a new version, so no record
    # is left saying "pending" (delivery dedups on publish.state_hash, which marks pending).
    if updated.content_source != "article":
        log.info("article page of %s: %s; the feed's text stays, marked %s", item.link, outcome.error,
                 updated.article_status)
    state = (await app.deliverer.states(feed.feed_id, [item.id]))[0]
    if state.version != item.version:
        return {"item": item.id, "article_status": "superseded"}
    clustered = await app.clusters.assign([updated])
    delivered = await app.deliverer.deliver(feed.feed_id, [(clustered[0], state.fingerprint)], [state], feed.tags)
    return {"item": item.id, "article_status": updated.article_status or "delivered",
            "delivered": bool(delivered), "error": outcome.error,
            "version": delivered[0].version if delivered else state.version}
