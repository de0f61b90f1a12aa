"""What the renewal loop should do next, for every feed and subscription. Pure.

Inputs are the feeds as the registry holds them (hub and self URL recorded
at each fetch), the subscription records and `now`; the output is a list of
actions the shell (renew.py) carries out. The rules:

* a feed that is enabled, announces a hub and has no live subscription for
  that exact (hub, topic) gets one ("subscribe", a new token and secret) —
  so a changed hub or topic means a new subscription;
* a subscription whose feed is gone, disabled, or now names another hub or
  topic, or when `public_url` is empty, is unsubscribed ("unsubscribe"); one
  never verified or already failed is just forgotten ("drop");
* a verified lease is renewed `renew_margin` before it ends ("renew", same
  token and secret); an expired one too;
* a subscription whose hub stayed silent while a poll found new items
  (no push within `stale_grace` before that poll, none since the last
  request) is renewed, with a `push_stale` event ("stale");
* a request the hub did not verify within `verify_timeout` failed ("fail");
  a failed one is tried again at `retry_at` (exponential backoff, `backoff`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ingest.push.state import FAILED, SUBSCRIBED, UNSUBSCRIBING, Subscription

__all__ = ["Action", "FeedPush", "PushRules", "backoff", "is_stale", "plan", "renew_margin", "topic_of"]


@dataclass(frozen=True)
class FeedPush:
    """A feed as push sees it."""

    feed_id: str
    hub: str  # "" = the feed announces no hub
    topic: str  # what to subscribe to: its self URL, else its URL
    enabled: bool
    polled_news_at: float = 0  # when a poll last found new items while pushed (epoch s)


@dataclass(frozen=True)
class PushRules:
    subscribing: bool  # public_url is set
    lease_seconds: float  # lease asked of hubs
    verify_timeout: float = 300.0  # a hub that has not verified by then failed
    backoff_base: float = 60.0  # first retry after a failure
    backoff_cap: float = 6 * 3600.0
    stale_grace: float = 300.0  # a push may trail a poll by this much before the hub counts as stale


@dataclass(frozen=True)
class Action:
    kind: str  # "subscribe", "renew", "stale" (renew, said aloud), "unsubscribe", "drop", "fail"
    feed_id: str
    hub: str
    topic: str
    token: str = ""  # the subscription acted on ("" for a new subscription)
    reason: str = ""  # for "fail" and "drop": why


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else 0.0
    except ValueError:
        return 0.0


def topic_of(url: str, self_url: str) -> str:
    return self_url or url


def backoff(failures: int, rules: PushRules) -> float:
    """Seconds before the next try after `failures` failures in a row."""
    return float(min(rules.backoff_cap, rules.backoff_base * 2.0 ** max(failures - 1, 0)))


def renew_margin(lease: float) -> float:
    """Renew this long before a lease ends: a tenth of it, at least a minute, at most a day."""
    return min(max(lease / 10, 60.0), 86400.0)


def _wanted(sub: Subscription, feed: FeedPush | None, rules: PushRules) -> bool:
    return bool(rules.subscribing and feed is not None and feed.enabled and feed.hub
                and (feed.hub, feed.topic) == (sub.hub, sub.topic))


def _unwanted(sub: Subscription, now: float, rules: PushRules) -> Action | None:
    if sub.state == UNSUBSCRIBING:
        if now - sub.requested_at > rules.verify_timeout:
            return Action("drop", sub.feed_id, sub.hub, sub.topic, sub.token, "unsubscribe not verified")
        return None
    if sub.state == SUBSCRIBED or sub.pending == "subscribe":
        return Action("unsubscribe", sub.feed_id, sub.hub, sub.topic, sub.token)
    return Action("drop", sub.feed_id, sub.hub, sub.topic, sub.token, "no longer wanted")


def is_stale(sub: Subscription, feed: FeedPush, last_push: float, rules: PushRules) -> bool:
    """A poll found news the hub never pushed: after our last request, and with no push
    in the `stale_grace` before it (a push may trail the poll that raced it)."""
    news = feed.polled_news_at
    return bool(news and news > sub.requested_at + rules.stale_grace and last_push < news - rules.stale_grace)


def _kept(sub: Subscription, feed: FeedPush, now: float, rules: PushRules) -> Action | None:
    act = sub.feed_id, sub.hub, sub.topic, sub.token
    if sub.pending == "subscribe" and now - sub.requested_at > rules.verify_timeout:
        return Action("fail", *act, reason="the hub did not verify the request in time")
    if sub.state == FAILED:
        return Action("renew", *act) if now >= sub.retry_at else None
    if sub.state == SUBSCRIBED and not sub.pending and is_stale(sub, feed, _epoch(sub.last_push_at), rules):
        return Action("stale", *act, reason="polls found items the hub did not push")
    if sub.state == SUBSCRIBED and not sub.pending:
        lease = max(sub.lease_expires - sub.requested_at, 0.0) or rules.lease_seconds
        if sub.lease_expires - now <= renew_margin(lease):
            return Action("renew", *act)
    return None


def plan(now: float, feeds: Mapping[str, FeedPush], subs: Iterable[Subscription],
         rules: PushRules) -> list[Action]:
    actions: list[Action] = []
    covered: set[str] = set()
    for sub in subs:
        feed = feeds.get(sub.feed_id)
        if feed is not None and _wanted(sub, feed, rules) and sub.feed_id not in covered:
            covered.add(sub.feed_id)
            action = _kept(sub, feed, now, rules)
        else:
            action = _unwanted(sub, now, rules)
        if action is not None:
            actions.append(action)
    if rules.subscribing:
        for feed in feeds.values():
            if feed.enabled and feed.hub and feed.feed_id not in covered:
                actions.append(Action("subscribe", feed.feed_id, feed.hub, feed.topic))
    return actions



