"""The pure parts of WebSub push: discovery, signatures, the renewal plan, verification answers."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

import pytest

from ingest.models import NotModified
from ingest.poll.schedule import FeedState, ScheduleRules, decide
from ingest.push.discover import discover_push, link_header_links
from ingest.push.plan import FeedPush, PushRules, backoff, plan
from ingest.push.receive import verification
from ingest.push.signature import sign, signature_problem
from ingest.push.state import FAILED, SUBSCRIBED, SUBSCRIBING, UNSUBSCRIBING, Subscription

ATOM = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
<title>t</title><link rel="hub" href="https://hub.example/"/><link href='/feed.xml' rel='self'/>
<entry><link rel="hub" href="https://entry-hub.example/"/></entry></feed>"""
RSS = b"""<rss xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>t</title>
<atom:link rel="self" type="application/rss+xml" href="https://pub.example/rss?a=1&amp;b=2"/>
<atom:link rel="hub" href="https://pubsubhubbub.appspot.com/"/><item><title>x</title></item></channel></rss>"""
JSON = b'{"version": "https://jsonfeed.org/version/1.1", "feed_url": "https://j.example/feed.json",' \
       b' "hubs": [{"type": "WebSub", "url": "https://hub.j.example/"}], "items": []}'


@pytest.mark.parametrize(("headers", "body", "hub", "self_url"), [
    ({}, ATOM, "https://hub.example/", "https://pub.example/feed.xml"),
    ({}, RSS, "https://pubsubhubbub.appspot.com/", "https://pub.example/rss?a=1&b=2"),
    ({}, JSON, "https://hub.j.example/", "https://j.example/feed.json"),
    ({"link": '<https://h.example/hub>; rel="hub", <https://pub.example/t>; rel="self"'}, ATOM,
     "https://h.example/hub", "https://pub.example/t"),
    ({}, b"<rss><channel><title>no hub</title></channel></rss>", "", ""),
    ({}, b'<feed><link rel="hub" href="javascript:alert(1)"/></feed>', "", ""),
    ({}, b"not a feed at all {", "", ""),
])
def test_discovery_finds_hub_and_self(headers: dict[str, str], body: bytes, hub: str, self_url: str) -> None:
    found = discover_push(headers, body, "https://pub.example/feed.xml")
    assert (found.hub, found.self_url) == (hub, self_url)


def test_link_header_with_several_rels() -> None:
    assert link_header_links('<https://a/>; rel="hub self"') == {"hub": "https://a/", "self": "https://a/"}
    assert link_header_links("garbage") == {}


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signature_every_algorithm_of_the_spec(method: str) -> None:
    body = b"<feed/>"
    header = f"{method}=" + hmac.new(b"s3cret", body, getattr(hashlib, method)).hexdigest()
    assert signature_problem(header, body, "s3cret") is None
    assert signature_problem(header, body + b" ", "s3cret") == "bad_signature"
    assert signature_problem(header, body, "other") == "bad_signature"


def test_signature_refusals() -> None:
    assert signature_problem(None, b"x", "k") == "unsigned"
    assert signature_problem("", b"x", "k") == "unsigned"
    assert signature_problem("md5=abc", b"x", "k") == "unknown_algorithm"
    assert signature_problem("nonsense", b"x", "k") == "bad_signature"
    assert signature_problem(sign(b"x", "k").upper().replace("SHA256", "sha256"), b"x", "k") is None


RULES = PushRules(subscribing=True, lease_seconds=86400, verify_timeout=300, backoff_base=60)


def _sub(**kw: object) -> Subscription:
    base: dict[str, object] = dict(token="t1", feed_id="f1", hub="https://hub/", topic="https://pub/feed",
                                   callback="https://us/push/t1", secret="s")
    return Subscription(**{**base, **kw})  # type: ignore[arg-type]


FEED = FeedPush("f1", "https://hub/", "https://pub/feed", True)


def _kinds(actions: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(a.kind, a.token) for a in actions]


def test_plan_subscribes_a_feed_with_a_hub_once() -> None:
    assert _kinds(plan(0, {"f1": FEED}, [], RULES)) == [("subscribe", "")]
    assert plan(0, {"f1": FeedPush("f1", "", "https://pub/feed", True)}, [], RULES) == []
    assert plan(0, {"f1": FEED}, [], PushRules(subscribing=False, lease_seconds=1)) == []
    pending = _sub(state=SUBSCRIBING, pending="subscribe", requested_at=0)
    assert plan(10, {"f1": FEED}, [pending], RULES) == []


def test_plan_renews_before_the_lease_ends_and_after_it() -> None:
    live = _sub(state=SUBSCRIBED, requested_at=0, lease_expires=86400)
    assert plan(1000, {"f1": FEED}, [live], RULES) == []
    assert _kinds(plan(86400 - 8000, {"f1": FEED}, [live], RULES)) == [("renew", "t1")]
    assert _kinds(plan(90000, {"f1": FEED}, [live], RULES)) == [("renew", "t1")]


def test_plan_unsubscribes_removed_disabled_and_changed() -> None:
    live = _sub(state=SUBSCRIBED, requested_at=0, lease_expires=86400)
    assert _kinds(plan(10, {}, [live], RULES)) == [("unsubscribe", "t1")]
    disabled = FeedPush("f1", "https://hub/", "https://pub/feed", False)
    assert _kinds(plan(10, {"f1": disabled}, [live], RULES)) == [("unsubscribe", "t1")]
    moved = FeedPush("f1", "https://other-hub/", "https://pub/feed", True)
    assert _kinds(plan(10, {"f1": moved}, [live], RULES)) == [("unsubscribe", "t1"), ("subscribe", "")]
    never_verified = _sub(state=FAILED)
    assert _kinds(plan(10, {}, [never_verified], RULES)) == [("drop", "t1")]
    leaving = _sub(state=UNSUBSCRIBING, pending="unsubscribe", requested_at=0)
    assert plan(10, {}, [leaving], RULES) == []
    assert _kinds(plan(400, {}, [leaving], RULES)) == [("drop", "t1")]


def test_plan_fails_unverified_and_retries_with_backoff() -> None:
    pending = _sub(state=SUBSCRIBING, pending="subscribe", requested_at=0)
    assert _kinds(plan(301, {"f1": FEED}, [pending], RULES)) == [("fail", "t1")]
    failed = _sub(state=FAILED, failures=2, retry_at=500)
    assert plan(499, {"f1": FEED}, [failed], RULES) == []
    assert _kinds(plan(500, {"f1": FEED}, [failed], RULES)) == [("renew", "t1")]
    assert [backoff(n, RULES) for n in (1, 2, 3)] == [60, 120, 240]
    assert backoff(50, RULES) == RULES.backoff_cap


def test_verification_answers_only_what_is_pending() -> None:
    pending = _sub(state=SUBSCRIBING, pending="subscribe")
    ok = {"hub.mode": "subscribe", "hub.topic": "https://pub/feed", "hub.challenge": "c1"}
    assert verification(pending, ok).body == "c1" and verification(pending, ok).outcome == "subscribed"
    assert verification(pending, {**ok, "hub.topic": "https://evil/feed"}).status == 404
    assert verification(pending, {**ok, "hub.mode": "unsubscribe"}).status == 404
    assert verification(pending, {**ok, "hub.challenge": ""}).status == 404
    assert verification(None, ok).status == 404
    assert verification(_sub(state=SUBSCRIBED), ok).status == 404  # nothing pending
    leaving = _sub(state=UNSUBSCRIBING, pending="unsubscribe")
    assert verification(leaving, {**ok, "hub.mode": "unsubscribe"}).outcome == "unsubscribed"


def test_a_pushed_feed_is_polled_at_the_long_fallback_interval() -> None:
    import random

    rules = ScheduleRules(default_interval=900, push_poll_interval=3600)
    result = NotModified(url="https://pub/feed", headers={}, fetched_at="2026-11-30T10:00:00Z")
    pushed = FeedState(feed_id="f1", url="https://pub/feed", push_expires_at=2000)
    polled = decide(1000, pushed, result, rules, random.Random(1))
    assert polled.next_due is not None and polled.next_due - 1000 >= 3600 * 0.95
    lapsed = decide(3000, pushed, result, rules, random.Random(1))  # the lease ran out: poll as usual
    assert lapsed.next_due is not None and lapsed.next_due - 3000 <= 900 * 1.05


def test_plan_renews_a_hub_that_stopped_pushing() -> None:
    live = _sub(state=SUBSCRIBED, requested_at=0, lease_expires=86400, last_push_at="1970-01-01T00:01:40Z")
    quiet = FeedPush("f1", "https://hub/", "https://pub/feed", True, polled_news_at=1000)
    assert _kinds(plan(1001, {"f1": quiet}, [live], RULES)) == [("stale", "t1")]
    pushed_lately = replace(live, last_push_at="1970-01-01T00:14:00Z")  # 840 s: within the grace
    assert plan(1001, {"f1": quiet}, [pushed_lately], RULES) == []
    just_renewed = replace(live, requested_at=900)  # the news came before our request settled
    assert plan(1001, {"f1": quiet}, [just_renewed], RULES) == []
    assert plan(1001, {"f1": FEED}, [live], RULES) == []  # no polled news at all
