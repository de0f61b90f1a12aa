"""The callback's two jobs: intent verification (GET) and content distribution (POST).

`verification` is the pure decision of §5.3: answer `hub.challenge` only for
a subscription that is waiting for exactly this mode and topic; anything
else (a topic never asked for, a mode not pending, an unknown token) is 404,
so nobody can subscribe us to what we did not ask for.

`accept_push` turns a signed body into the same arq `parse_feed` job a poll
makes (ingest/poll/enqueue.py), so parse, normalize, dedup and delivery are
the poll's own: an item pushed and polled reaches the stream once. The body
is never parsed here; the hub gets its 2xx as soon as the job is queued.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

import redis.asyncio as aioredis
from arq.connections import ArqRedis

from ingest.counters import PUSHED_HEADER
from ingest.deliver.events import publish_events
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from ingest.poll.enqueue import enqueue_parse
from ingest.poll.fetch import utc_now_iso
from ingest.poll.registry import load_feed
from ingest.push.state import (
    FAILED,
    SUBSCRIBED,
    Subscription,
    delete_subscription,
    load_subscription,
    mark_feed,
    save_subscription,
)

__all__ = ["Verdict", "accept_push", "count_refusal", "verification", "verify_intent"]

MAX_LEASE = 30 * 86400.0  # a longer lease from a hub is taken as this (renewal stays regular)


@dataclass(frozen=True)
class Verdict:
    status: int  # HTTP status of our answer
    body: str = ""  # the challenge, when confirmed
    outcome: str = ""  # "subscribed", "unsubscribed", "denied" or "" (refused)


def verification(sub: Subscription | None, params: Mapping[str, str]) -> Verdict:
    """Pure: our answer to a verification (or denial) request."""
    mode, topic = params.get("hub.mode", ""), params.get("hub.topic", "")
    if sub is None or topic != sub.topic:
        return Verdict(404)
    if mode == "denied":
        return Verdict(200, "", "denied")
    challenge = params.get("hub.challenge", "")
    if not challenge or mode not in ("subscribe", "unsubscribe") or sub.pending != mode:
        return Verdict(404)
    return Verdict(200, challenge, "subscribed" if mode == "subscribe" else "unsubscribed")


def _lease(params: Mapping[str, str], asked: float) -> float:
    try:
        lease = float(params.get("hub.lease_seconds", ""))
    except ValueError:
        lease = asked
    return min(max(lease, 0.0), MAX_LEASE) if lease > 0 else asked


async def _event(redis: aioredis.Redis, keys: Keys, kind: str, sub: Subscription, **extra: object) -> None:
    await publish_events(redis, keys, [{"event": kind, "feed_id": sub.feed_id, "hub": sub.hub,
                                        "topic": sub.topic, "at": utc_now_iso(), **extra}])


async def verify_intent(redis: aioredis.Redis, keys: Keys, token: str, params: Mapping[str, str],
                        asked_lease: float, now: float | None = None) -> Verdict:
    """Answer one verification request and record what it confirmed."""
    now = time.time() if now is None else now
    sub = await load_subscription(redis, keys, token)
    verdict = verification(sub, params)
    if sub is None or not verdict.outcome:
        return verdict
    if verdict.outcome == "subscribed":
        expires = now + _lease(params, asked_lease)
        await save_subscription(redis, keys, replace(sub, state=SUBSCRIBED, pending="", lease_expires=expires,
                                                     requested_at=now, failures=0, last_error=""))
        await mark_feed(redis, keys, sub.feed_id, push_expires_at=expires)
        await _event(redis, keys, "subscribed", sub, lease_expires_at=_utc_iso(expires))
    elif verdict.outcome == "unsubscribed":
        await delete_subscription(redis, keys, token)
        await _event(redis, keys, "unsubscribed", sub)
    else:  # denied: the hub will not (or no longer) push; retried with backoff by the loop
        reason = params.get("hub.reason", "") or "denied by the hub"
        await save_subscription(redis, keys, replace(sub, state=FAILED, pending="", last_error=reason,
                                                     failures=sub.failures + 1, retry_at=now + 3600))
        await mark_feed(redis, keys, sub.feed_id, push_expires_at=0)
    return verdict


def _utc_iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


async def count_refusal(redis: aioredis.Redis, keys: Keys, reason: str, sub: Subscription | None) -> None:
    """Count a refused push by reason, and say so on the events channel when its feed is known."""
    await redis.hincrby(keys.stats, f"push_refused:{reason}", 1)
    if sub is not None:
        await _event(redis, keys, "push_refused", sub, reason=reason)


async def accept_push(redis: aioredis.Redis, pool: ArqRedis, keys: Keys, sub: Subscription,
                      body: bytes, content_type: str) -> bool:
    """Queue a verified body for parse/normalize/deliver; False when its feed is gone."""
    state = await load_feed(redis, keys, sub.feed_id)
    if state is None:
        return False
    # The feed as a poll sees it (ingest/poll/poller.py): its own full_text mode included (#21).
    spec = FeedSpec(feed_id=state.feed_id, url=state.url, title=state.title, tags=state.tags,
                    full_text=state.full_text)
    at = utc_now_iso()
    headers = {PUSHED_HEADER: "1", **({"content-type": content_type} if content_type else {})}
    fetched = Fetched(url=state.url, final_url=sub.topic, status=200, headers=headers, body=body, fetched_at=at)
    await enqueue_parse(pool, spec, fetched)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.stats, "push_received", 1)
        pipe.hincrby(keys.stats, "push_bytes", len(body))
        pipe.hset(keys.push_subscription(sub.token), "last_push_at", at)
        await pipe.execute()
    await mark_feed(redis, keys, sub.feed_id, last_push_at=at)
    return True
