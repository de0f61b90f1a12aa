"""Steering registered feeds from outside (API, CLI): edit, disable, poll now; and
how a feed looks to a person (a row, a state).

The registry (registry.py) owns adding, enabling and removing; this module
adds what the HTTP API and `ingest poll` need, on the same keys. "Poll now"
moves the feed to the head of the schedule instead of fetching here, so the
poller's politeness, validators and leases apply as to any poll; a feed a
poller holds (leased) is left alone, so it is never fetched twice at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from ingest.deliver.events import publish_events
from ingest.keys import Keys
from ingest.poll.schedule import FeedState
from ingest.redis_conn import atomic_pipeline

__all__ = ["FEED_STATES", "disable_feed", "edit_feed", "feed_row", "feed_state", "poll_now"]

FEED_STATES = ("new", "ok", "failing", "disabled")


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def feed_state(state: FeedState) -> str:
    """Pure: one of FEED_STATES (metrics and the status page group feeds by it)."""
    if state.disabled_reason:
        return "disabled"
    if state.consecutive_errors or state.last_error:
        return "failing"
    if state.last_fetch_at:
        return "ok"
    return "new"


def feed_row(state: FeedState, due: float | None, now: float | None = None) -> dict[str, Any]:
    """A feed as `ingest feeds --json` and the API show it (pure given `now`)."""
    now = time.time() if now is None else now
    return {
        "id": state.feed_id, "url": state.url, "title": state.title, "tags": list(state.tags),
        "status": "disabled" if state.disabled_reason else (state.last_status or "new"),
        "state": feed_state(state),
        "last_fetch_at": state.last_fetch_at or None, "next_due_at": _when(due) if due else None,
        "items": state.items, "consecutive_errors": state.consecutive_errors,
        "disabled_reason": state.disabled_reason or None, "last_error": state.last_error or None,
        "interval": state.interval or None,
        "full_text": state.full_text or None,  # the feed's article-page mode; null: the setting (#15)
        # WebSub (#11): pushed while a verified lease runs; the hub as the feed announces it.
        "pushed": state.push_expires_at > now, "hub": state.hub or None,
        "push_lease_expires_at": _when(state.push_expires_at) if state.push_expires_at else None,
        "last_push_at": state.last_push_at or None,
    }


async def edit_feed(
    redis: aioredis.Redis, keys: Keys, feed_id: str, *, interval: float | None = None,
    tags: Sequence[str] | None = None,
) -> None:
    """Change a feed's poll interval (0: adaptive) and/or its tags."""
    changes: dict[str, Any] = {}
    if interval is not None:
        changes["interval"] = interval
    if tags is not None:
        changes["tags"] = ",".join(tags)
    if changes:
        await redis.hset(keys.feed(feed_id), mapping=changes)


async def disable_feed(redis: aioredis.Redis, keys: Keys, feed_id: str, reason: str) -> bool:
    """Stop polling a feed, keeping it registered; False if it was already disabled."""
    current = await redis.hget(keys.feed(feed_id), "disabled_reason")
    if current:
        return False
    async with atomic_pipeline(redis) as pipe:
        pipe.hset(keys.feed(feed_id), "disabled_reason", reason)
        pipe.zrem(keys.schedule, feed_id)
        await pipe.execute()
    url = await redis.hget(keys.feed(feed_id), "url")
    await publish_events(redis, keys, [{
        "event": "disabled", "feed_id": feed_id, "url": (url or b"").decode(), "reason": reason,
        "at": _when(datetime.now(UTC).timestamp()),
    }])
    return True


async def poll_now(redis: aioredis.Redis, keys: Keys, feed_ids: Sequence[str] | None, now: float) -> int:
    """Make feeds due now (None: every enabled feed); returns how many were."""
    if feed_ids is None:
        feed_ids = [i.decode() for i in await redis.zrange(keys.schedule, 0, -1)]
    if not feed_ids:
        return 0
    # Scheduled and not claimed right now (a claimed feed is being fetched).
    async with redis.pipeline(transaction=False) as pipe:
        for feed_id in feed_ids:
            pipe.zscore(keys.schedule, feed_id)
            pipe.hexists(keys.feed(feed_id), "lease")
        replies = await pipe.execute()
    due = [i for i, score, leased in zip(feed_ids, replies[::2], replies[1::2], strict=True)
           if score is not None and not leased]
    if due:
        await redis.zadd(keys.schedule, dict.fromkeys(due, int(now * 1000)), xx=True)
    return len(due)
