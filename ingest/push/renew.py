"""The renewal loop: one supervised part of `ingest run` that keeps subscriptions right.

Every `period` seconds it reads the feeds and the subscription records,
asks `plan` what to do and does it: subscribe feeds that announce a hub,
renew leases before they end, unsubscribe removed or disabled feeds (and
the old subscription when a hub or topic changed), retry failed ones with
backoff. Hub requests run one at a time: there are few, and each is only an
HTTP POST (the hub verifies later, against our callback).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import replace

import aiohttp
import redis.asyncio as aioredis

from ingest.deliver.events import publish_events
from ingest.keys import Keys
from ingest.poll.registry import list_feeds
from ingest.poll.urlguard import check_url
from ingest.push.hub import hub_request
from ingest.push.plan import Action, FeedPush, PushRules, backoff, plan, topic_of
from ingest.push.state import (
    FAILED,
    SUBSCRIBED,
    SUBSCRIBING,
    UNSUBSCRIBING,
    Subscription,
    delete_subscription,
    load_subscription,
    load_subscriptions,
    mark_feed,
    save_subscription,
)
from ingest.settings import Settings

__all__ = ["PERIOD_SECONDS", "callback_url", "reconcile", "rules_of", "run_renewal"]

log = logging.getLogger(__name__)
PERIOD_SECONDS = 30.0


def rules_of(settings: Settings) -> PushRules:
    return PushRules(subscribing=bool(settings.public_url), lease_seconds=settings.push_lease_seconds)


def callback_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/push/{token}"


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class _Shell:
    def __init__(self, settings: Settings, redis: aioredis.Redis, session: aiohttp.ClientSession) -> None:
        self.settings, self.redis, self.session = settings, redis, session
        self.keys = Keys.for_settings(settings)
        self.rules = rules_of(settings)

    async def event(self, kind: str, sub: Subscription, **extra: object) -> None:
        await publish_events(self.redis, self.keys, [{
            "event": kind, "feed_id": sub.feed_id, "hub": sub.hub, "topic": sub.topic,
            "at": _iso(time.time()), **extra}])

    async def failed(self, sub: Subscription, error: str, now: float) -> None:
        failures = sub.failures + 1
        log.warning("push: feed %s at hub %s: %s; retry %d in %.0f s", sub.feed_id, sub.hub, error,
                    failures, backoff(failures, self.rules))
        await self.redis.hincrby(self.keys.stats, "push_subscribe_errors", 1)
        await save_subscription(self.redis, self.keys, replace(
            sub, state=FAILED, pending="", failures=failures, last_error=error,
            retry_at=now + backoff(failures, self.rules)))
        await mark_feed(self.redis, self.keys, sub.feed_id, push_expires_at=0)

    async def subscribe(self, sub: Subscription, now: float) -> None:
        asked = replace(sub, pending="subscribe", requested_at=now,
                        state=SUBSCRIBED if sub.state == SUBSCRIBED else SUBSCRIBING)
        await save_subscription(self.redis, self.keys, asked)  # before asking: the hub verifies at once
        error = await hub_request(self.session, self.settings, sub.hub, mode="subscribe", topic=sub.topic,
                                  callback=sub.callback, secret=sub.secret,
                                  lease_seconds=self.settings.push_lease_seconds)
        if error:
            current = await load_subscription(self.redis, self.keys, sub.token) or asked
            await self.failed(current, error, now)

    async def unsubscribe(self, sub: Subscription, now: float) -> None:
        asked = replace(sub, pending="unsubscribe", requested_at=now, state=UNSUBSCRIBING)
        await save_subscription(self.redis, self.keys, asked)
        await mark_feed(self.redis, self.keys, sub.feed_id, push_expires_at=0)
        error = await hub_request(self.session, self.settings, sub.hub, mode="unsubscribe",
                                  topic=sub.topic, callback=sub.callback)
        if error:  # nothing more we can do: forget it (its pushes will be refused as unknown)
            log.warning("push: unsubscribe of feed %s at %s failed: %s", sub.feed_id, sub.hub, error)
            await delete_subscription(self.redis, self.keys, sub.token)
            await self.event("unsubscribed", sub, reason=f"hub request failed: {error}")

    async def new_subscription(self, action: Action, now: float) -> None:
        token = secrets.token_urlsafe(24)
        sub = Subscription(token=token, feed_id=action.feed_id, hub=action.hub, topic=action.topic,
                           callback=callback_url(self.settings.public_url, token),
                           secret=secrets.token_hex(32))
        try:
            check_url(action.hub, self.settings.allowed_networks)
        except Exception as e:  # noqa: BLE001 - refused: record the failure, try later
            await save_subscription(self.redis, self.keys, sub)
            await self.failed(sub, f"refused: {e}", now)
            return
        await self.subscribe(sub, now)

    async def carry_out(self, action: Action, subs: dict[str, Subscription], now: float) -> None:
        if action.kind == "subscribe":
            await self.new_subscription(action, now)
            return
        sub = subs[action.token]
        if action.kind == "renew":
            await self.subscribe(sub, now)
        elif action.kind == "stale":
            log.warning("push: feed %s: %s; renewing at %s", sub.feed_id, action.reason, sub.hub)
            await self.event("push_stale", sub, reason=action.reason)
            await self.subscribe(sub, now)
        elif action.kind == "unsubscribe":
            await self.unsubscribe(sub, now)
        elif action.kind == "fail":
            await self.failed(sub, action.reason, now)
        elif action.kind == "drop":
            await delete_subscription(self.redis, self.keys, sub.token)
            if sub.state in (SUBSCRIBED, UNSUBSCRIBING):
                await self.event("unsubscribed", sub, reason=action.reason)


async def reconcile(settings: Settings, redis: aioredis.Redis, session: aiohttp.ClientSession,
                    now: float | None = None) -> list[Action]:
    """One pass: read, plan, act. Returns what was done (tests and logs read it)."""
    now = time.time() if now is None else now
    keys = Keys.for_settings(settings)
    shell = _Shell(settings, redis, session)
    subs = await load_subscriptions(redis, keys)
    if not subs and not shell.rules.subscribing:
        return []
    feeds = {state.feed_id: FeedPush(state.feed_id, state.hub, topic_of(state.url, state.self_url),
                                     not state.disabled_reason, state.polled_news_at)
             for state, _ in await list_feeds(redis, keys)}
    actions = plan(now, feeds, subs, shell.rules)
    by_token = {s.token: s for s in subs}
    for action in actions:
        try:
            await shell.carry_out(action, by_token, now)
        except (aiohttp.ClientError, OSError) as e:  # one hub's trouble never stops the pass
            log.warning("push: %s of feed %s failed: %s", action.kind, action.feed_id, e)
    return actions


async def run_renewal(settings: Settings, redis: aioredis.Redis, session: aiohttp.ClientSession,
                      stop: asyncio.Event, period: float = PERIOD_SECONDS) -> None:
    """Reconcile every `period` seconds until `stop` (Redis errors end it: the supervisor restarts it)."""
    while not stop.is_set():
        await reconcile(settings, redis, session)
        try:
            await asyncio.wait_for(stop.wait(), period)
        except TimeoutError:
            pass
