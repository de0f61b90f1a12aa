"""Pure scheduling rules, table-tested."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from ingest.models import Fetched, FetchFailed, NotModified
from ingest.poll.outage import OutageDetector
from ingest.poll.politeness import cache_max_age, is_permanent_redirect, retry_after
from ingest.poll.schedule import (
    WEEK,
    FeedState,
    ScheduleRules,
    backoff_delay,
    decide,
    feed_hint_seconds,
    poll_interval,
    publishing_interval,
)

RULES = ScheduleRules(default_interval=900, min_interval=60, max_interval=21600, max_backoff=86400,
                      max_consecutive_errors=5, redirect_trust_count=3)
NOW = 1_700_000_000.0
STATE = FeedState(feed_id="f", url="https://ex.example/feed")
AT = "2023-11-14T22:13:20Z"


def rng() -> random.Random:
    return random.Random(7)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ([], None),
        ([NOW - 3600 * i for i in range(168)], WEEK / 168 / 2),  # hourly -> every 30 min
        ([NOW - 86400 * i for i in range(7)], WEEK / 7 / 2),  # daily -> every 12 h
        ([NOW - 30 * 86400], 15 * 86400),  # one old item: half its age
        ([NOW + 30 * 86400, NOW - 4000], 2000),  # far-future dates are ignored
    ],
)
def test_publishing_interval(dates: list[float], expected: float | None) -> None:
    assert publishing_interval(dates, NOW) == expected


@pytest.mark.parametrize(
    ("ttl", "period", "frequency", "expected"),
    [
        ("60", None, None, 3600),
        (None, "hourly", "2", 1800),
        (None, "daily", None, 86400),
        ("5", "daily", "1", 86400),  # the longest hint wins
        ("x", "sometimes", "y", None),
        (None, None, None, None),
    ],
)
def test_feed_hints(ttl: str | None, period: str | None, frequency: str | None, expected: float | None) -> None:
    assert feed_hint_seconds(ttl, period, frequency) == expected


@pytest.mark.parametrize(
    ("state", "max_age", "expected"),
    [
        (STATE, None, 900),  # nothing known: default
        (FeedState("f", "u", adaptive_interval=10), None, 60),  # clamped to min
        (FeedState("f", "u", adaptive_interval=10**6), None, 21600),  # clamped to max
        (FeedState("f", "u", adaptive_interval=600, feed_min_interval=7200), None, 7200),  # feed asks more
        (FeedState("f", "u", adaptive_interval=600), 3600.0, 3600),  # Cache-Control asks more
        (FeedState("f", "u", interval=100000), None, 100000),  # the user's interval passes max
        (FeedState("f", "u", interval=5), None, 60),  # but not min
    ],
)
def test_poll_interval(state: FeedState, max_age: float | None, expected: float) -> None:
    assert poll_interval(state, RULES, max_age) == expected


def test_backoff_grows_and_is_bounded() -> None:
    delays = [backoff_delay(n, 900, RULES, rng()) for n in range(1, 12)]
    assert all(b > a for a, b in zip(delays[:6], delays[1:7], strict=False))
    assert max(delays) <= RULES.max_backoff * 1.2 and min(delays) >= RULES.min_interval


def fetched(body_status: int = 200, headers: dict[str, str] | None = None, moved: str | None = None) -> Fetched:
    return Fetched("https://ex.example/feed", "https://ex.example/feed", body_status, headers or {}, b"x", AT,
                   permanent_url=moved)


def test_new_body_is_parsed_same_body_is_not() -> None:
    d = decide(NOW, STATE, fetched(headers={"etag": '"1"'}), RULES, rng(), body_hash="h1")
    assert d.parse and d.updates["body_hash"] == "h1" and d.updates["etag"] == '"1"'
    same = FeedState("f", "https://ex.example/feed", body_hash="h1")
    assert not decide(NOW, same, fetched(), RULES, rng(), body_hash="h1").parse


def test_not_modified_resets_errors_and_recovers() -> None:
    failing = FeedState("f", "u", consecutive_errors=3)
    d = decide(NOW, failing, NotModified("u", {}, AT), RULES, rng())
    assert d.updates["consecutive_errors"] == 0 and d.updates["last_status"] == 304
    assert [e["event"] for e in d.events] == ["recovered"]
    assert d.next_due is not None and NOW + 900 * 0.95 <= d.next_due <= NOW + 900 * 1.05


def failed(**kw: object) -> FetchFailed:
    return FetchFailed("u", kw.pop("error", "boom"), AT, **kw)  # type: ignore[arg-type]


def test_network_failure_during_our_outage_is_not_counted() -> None:
    d = decide(NOW, STATE, failed(network=True), RULES, rng(), outage=True)
    assert "consecutive_errors" not in d.updates and d.next_due == NOW + RULES.min_interval
    d = decide(NOW, STATE, failed(network=True), RULES, rng(), outage=False)
    assert d.updates["consecutive_errors"] == 1


def test_refused_and_gone_disable_at_once() -> None:
    assert decide(NOW, STATE, failed(refused=True), RULES, rng()).next_due is None
    d = decide(NOW, STATE, failed(status=410), RULES, rng())
    assert d.next_due is None and d.updates["disabled_reason"] == "gone (HTTP 410)"


def test_retry_after_is_capped_by_max_backoff() -> None:
    d = decide(NOW, STATE, failed(status=429, retry_after=10**9), RULES, rng())
    assert d.next_due == NOW + RULES.max_backoff


def test_redirect_trust_counts_consecutive_sightings() -> None:
    state = STATE
    for n in (1, 2):
        d = decide(NOW, state, fetched(moved="https://new.example/feed"), RULES, rng())
        assert d.new_url is None and d.updates["redirect_count"] == n
        state = FeedState("f", STATE.url, redirect_candidate="https://new.example/feed", redirect_count=n)
    d = decide(NOW, state, fetched(moved="https://new.example/feed"), RULES, rng())
    assert d.new_url == "https://new.example/feed" and d.updates["url"] == d.new_url
    assert [e["event"] for e in d.events] == ["moved"]
    reset = decide(NOW, state, fetched(), RULES, rng())
    assert reset.updates["redirect_count"] == 0 and reset.new_url is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "120"}, 120.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:15:20 GMT"}, 120.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, datetime.fromtimestamp(NOW, UTC)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("public, max-age=600", 600.0), ("s-maxage=30, max-age=600", 30.0), ("no-cache", None), (None, None)],
)
def test_cache_max_age(value: str | None, expected: float | None) -> None:
    assert cache_max_age({"cache-control": value} if value else {}) == expected


@pytest.mark.parametrize(("status", "permanent"), [(301, True), (308, True), (302, False), (307, False), (303, False)])
def test_permanent_redirects(status: int, permanent: bool) -> None:
    assert is_permanent_redirect(status) is permanent


def test_outage_needs_many_hosts_failing_and_no_success() -> None:
    detector = OutageDetector(window=60, min_failures=5, min_hosts=3)
    for i in range(5):
        detector.network_failure("one-host", NOW + i)
    assert not detector.active(NOW + 5)  # one dead host is that host's problem
    for i, host in enumerate(["a", "b", "c", "d", "e"]):
        detector.network_failure(host, NOW + 10 + i)
    assert detector.active(NOW + 15)
    detector.success(NOW + 16)
    assert not detector.active(NOW + 16)
    for i, host in enumerate(["a", "b", "c", "d", "e"]):
        detector.network_failure(host, NOW + 100 + i)
    assert detector.active(NOW + 105)
    assert not detector.active(NOW + 200)  # old failures age out


def test_a_new_body_leaves_the_error_count_to_the_worker() -> None:
    failing = FeedState("f", "u", consecutive_errors=2, body_hash="old")
    new_body = decide(NOW, failing, fetched(), RULES, rng(), body_hash="new")
    assert new_body.parse and "consecutive_errors" not in new_body.updates and new_body.events == []
    same_body = decide(NOW, FeedState("f", "u", consecutive_errors=2, body_hash="h"), fetched(), RULES, rng(),
                       body_hash="h")
    assert same_body.updates["consecutive_errors"] == 0
    assert [e["event"] for e in same_body.events] == ["recovered"]
