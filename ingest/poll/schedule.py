"""Pure scheduling decisions: what a fetch outcome does to a feed's state.

Given the time, the feed's stored state, the fetch result and the settings,
`decide` returns the fields to store, when the feed is next due (or None:
disabled), whether the body must be parsed, and the events to publish. No
I/O and no clock: the poller passes `now` and a random generator, so every
rule here is table-tested.

The interval rule (docs/polling.md):
  base   = the user's --interval, else the adaptive interval the workers
           derived from item dates (about twice per average gap between
           items over the last week), else default_interval;
  base   = clamped to [min_interval, max_interval] (a user interval only to min);
  asked  = the longest of the feed's own hints (RSS ttl, sy:updatePeriod /
           sy:updateFrequency) and the response's Cache-Control max-age,
           capped at a week;
  next   = now + max(base, asked), with ±5% jitter so feeds added together
           do not stay in lockstep.
Failures back off exponentially from base (×2 per consecutive failure,
±20% jitter, at most max_backoff); 429/503 wait their Retry-After (or the
backoff) without counting as failures; 410 disables; so does
max_consecutive_errors failures in a row, with the last error as reason.
Network failures during an outage on our side are not counted.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingest.models import Fetched, FetchFailed, FetchResult, NotModified
from ingest.poll.politeness import cache_max_age, is_gone, is_rate_limited
from ingest.push.discover import discover_push

__all__ = [
    "Decision",
    "FeedState",
    "ScheduleRules",
    "backoff_delay",
    "decide",
    "feed_hint_seconds",
    "poll_interval",
    "publishing_interval",
]

WEEK = 7 * 86400.0
_SY_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000, "yearly": 31536000}


@dataclass(frozen=True)
class ScheduleRules:
    """The settings scheduling depends on (a subset of Settings, easy to build in tests)."""

    default_interval: float = 900
    min_interval: float = 60
    max_interval: float = 21600
    max_backoff: float = 86400
    max_consecutive_errors: int = 10
    redirect_trust_count: int = 3
    push_poll_interval: float = 3600  # fallback poll of a feed a hub pushes (#11)


@dataclass(frozen=True)
class FeedState:
    """A feed as the registry stores it (`<ns>:feed:<id>` hash)."""

    feed_id: str
    url: str
    title: str = ""
    tags: tuple[str, ...] = ()
    interval: float = 0  # set by the user; 0 = adaptive
    full_text: str = ""  # article pages: off/auto/always; "" = the `full_text` setting (#15)
    etag: str = ""
    last_modified: str = ""
    body_hash: str = ""
    last_fetch_at: str = ""
    last_status: str = ""
    last_error: str = ""
    consecutive_errors: int = 0
    disabled_reason: str = ""
    redirect_candidate: str = ""
    redirect_count: int = 0
    adaptive_interval: float = 0  # from item dates, written by workers
    feed_min_interval: float = 0  # from ttl / sy:update*, written by workers
    items: int = 0
    added_at: str = ""
    hub: str = ""  # WebSub hub the feed announces (document or Link header), "" = none
    self_url: str = ""  # the feed's own URL as it announces it: the WebSub topic
    push_expires_at: float = 0  # lease expiry of a verified WebSub subscription (epoch s), 0 = not pushed
    last_push_at: str = ""  # ISO 8601 UTC of the last accepted push
    polled_news_at: float = 0  # when a poll last found new items while pushed (epoch s; push staleness)

    @classmethod
    def from_hash(cls, feed_id: str, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> FeedState:
        # One pass over the hash, each field read by its kind, and the instance's fields
        # filled in one step: a claim reads ~25 fields of every feed it claims, and the
        # frozen dataclass's __init__ (a setattr per field) was half of the ~15 us (#21).
        # Keys are looked up as the bytes Redis gives, text fields kept as decoded, and
        # numbers that read "0" (most of them) not parsed: 17 -> 6 us (#21).
        # A value that is its field's default is left as the default, undecoded: "" for
        # any field, "0" for a number (a warm feed's hash holds ~12 of them; 5.8 -> 5.1 us,
        # decision 158). A tag list of "0" is the tag "0", read.
        fields: dict[str, Any] = {"feed_id": feed_id, **_HASH_DEFAULTS}
        for key, value in raw.items():
            if not value:
                continue
            known = _FIELDS_BY_KEY.get(key)
            if known is None:
                continue
            name, read = known
            if read is None:
                fields[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            elif value not in _ZEROS or read is _tags:
                fields[name] = read(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
        state = cls.__new__(cls)
        state.__dict__.update(fields)
        return state


def _number(text: str) -> float:
    if text == "0" or not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return 0.0


def _whole(text: str) -> int:
    if text == "0" or not text:
        return 0
    try:
        return int(text)
    except ValueError:
        return int(_number(text))


def _tags(text: str) -> tuple[str, ...]:
    return tuple(filter(None, text.split(","))) if text else ()


_KINDS: dict[Any, Callable[[str], Any] | None] = {float: _number, int: _whole, str: None}
# How each stored field is read (a number that does not parse reads as 0; None: the text
# as it is), and what a field missing from the hash is: "" or 0.0 / 0.
_HASH_READERS: dict[str, Callable[[str], Any] | None] = {
    f.name: _tags if f.name == "tags" else _KINDS[{"float": float, "int": int}.get(str(f.type), str)]
    for f in dataclasses.fields(FeedState) if f.name != "feed_id"
}
_HASH_DEFAULTS: dict[str, Any] = {name: "" if read is None else read("") for name, read in _HASH_READERS.items()}
# The same, found by the key as Redis gives it (bytes) or as text.
_FIELDS_BY_KEY: dict[bytes | str, tuple[str, Callable[[str], Any] | None]] = {
    **{name.encode(): (name, read) for name, read in _HASH_READERS.items()},
    **{name: (name, read) for name, read in _HASH_READERS.items()},
}


_ZEROS: frozenset[bytes | str] = frozenset({b"0", "0"})  # a number's default, as stored


@dataclass(frozen=True)
class Decision:
    next_due: float | None  # epoch seconds; None = disabled, leave the schedule
    updates: dict[str, str | int | float] = field(default_factory=dict)  # hash fields to set
    parse: bool = False  # enqueue a parse job for the fetched body
    new_url: str | None = None  # the feed moved for good: store this URL
    events: list[dict[str, Any]] = field(default_factory=list)


def publishing_interval(dates: Sequence[float], now: float) -> float | None:
    """Seconds between polls that see each new item about half a gap after it appeared.

    From the publication times (epoch seconds) of the feed's items: the number
    published during the last week gives the average gap; we poll twice per
    gap. With one recent item or none, half the age of the newest item.
    None when the feed's items carry no dates.
    """
    past = sorted(d for d in dates if d <= now + 3600)
    if not past:
        return None
    recent = [d for d in past if d >= now - WEEK]
    if len(recent) >= 2:
        return WEEK / len(recent) / 2
    return max(now - past[-1], 0.0) / 2


def feed_hint_seconds(ttl: Any, update_period: Any, update_frequency: Any) -> float | None:
    """The shortest interval the feed itself asks for (RSS ttl minutes, sy:updatePeriod/Frequency)."""
    hints: list[float] = []
    try:
        if ttl not in (None, ""):
            minutes = float(str(ttl).strip())
            if minutes > 0:
                hints.append(minutes * 60)
    except ValueError:
        pass
    period = _SY_PERIODS.get(str(update_period or "").strip().lower())
    if period:
        try:
            frequency = max(1.0, float(str(update_frequency or 1).strip()))
        except ValueError:
            frequency = 1.0
        hints.append(period / frequency)
    return max(hints) if hints else None


def poll_interval(state: FeedState, rules: ScheduleRules, max_age: float | None) -> float:
    """Seconds until the next poll of a healthy feed (rule in the module docstring)."""
    if state.interval > 0:
        base = max(state.interval, rules.min_interval)
    else:
        base = state.adaptive_interval or rules.default_interval
        base = min(max(base, rules.min_interval), rules.max_interval)
    asked = min(max(state.feed_min_interval, max_age or 0.0), WEEK)
    return max(base, asked)


def backoff_delay(errors: int, base: float, rules: ScheduleRules, rng: random.Random) -> float:
    """Exponential backoff with ±20% jitter, within [min_interval, max_backoff]."""
    raw = base * (2.0 ** max(errors - 1, 0))
    return float(max(rules.min_interval, min(rules.max_backoff, raw) * rng.uniform(0.8, 1.2)))


def _redirect(state: FeedState, result: FetchResult, rules: ScheduleRules) -> tuple[dict[str, Any], str | None]:
    """Trust a permanent redirect only after seeing it `redirect_trust_count` times in a row."""
    target = result.permanent_url
    if not target or target == state.url:
        if state.redirect_candidate:
            return {"redirect_candidate": "", "redirect_count": 0}, None
        return {}, None
    count = state.redirect_count + 1 if target == state.redirect_candidate else 1
    if count >= rules.redirect_trust_count:
        return {"redirect_candidate": "", "redirect_count": 0, "url": target}, target
    return {"redirect_candidate": target, "redirect_count": count}, None


def _event(kind: str, state: FeedState, at: str, **extra: Any) -> dict[str, Any]:
    return {"event": kind, "feed_id": state.feed_id, "url": state.url, "at": at, **extra}


def decide(  # noqa: C901 - one branch per kind of outcome, in one readable place
    now: float,
    state: FeedState,
    result: FetchResult,
    rules: ScheduleRules,
    rng: random.Random,
    *,
    outage: bool = False,
    body_hash: str | None = None,
) -> Decision:
    """What to store and when to come back, after one fetch of one feed."""
    updates, new_url = _redirect(state, result, rules)
    events: list[dict[str, Any]] = []
    at = result.fetched_at
    if new_url:
        events.append(_event("moved", state, at, to=new_url))
    headers = getattr(result, "headers", {}) or {}
    healthy = poll_interval(state, rules, cache_max_age(headers))
    if state.push_expires_at > now:  # a hub pushes it: polls are only the fallback (#11)
        healthy = max(healthy, rules.push_poll_interval)
    updates["last_fetch_at"] = at

    if isinstance(result, FetchFailed):
        updates["last_error"] = result.error
        updates["last_status"] = result.status or ("refused" if result.refused else "error")
        if result.refused or (result.status is not None and is_gone(result.status)):
            reason = "gone (HTTP 410)" if result.status == 410 else f"refused: {result.error}"
            updates["disabled_reason"] = reason
            events.append(_event("disabled", state, at, reason=reason))
            return Decision(None, updates, new_url=new_url, events=events)
        if result.status is not None and is_rate_limited(result.status):
            wait = result.retry_after if result.retry_after is not None else backoff_delay(
                state.consecutive_errors + 1, healthy, rules, rng)
            wait = min(max(wait, rules.min_interval), rules.max_backoff)
            return Decision(now + wait, updates, new_url=new_url, events=events)
        if outage and result.network:
            # Our own network is down: not the feed's fault, try again soon.
            return Decision(now + rules.min_interval, updates, new_url=new_url, events=events)
        errors = state.consecutive_errors + 1
        updates["consecutive_errors"] = errors
        if errors >= rules.max_consecutive_errors:
            reason = f"{errors} consecutive failures; last: {result.error}"
            updates["disabled_reason"] = reason
            events.append(_event("disabled", state, at, reason=reason))
            return Decision(None, updates, new_url=new_url, events=events)
        if errors == 1:
            events.append(_event("error", state, at, error=result.error))
        return Decision(now + backoff_delay(errors, healthy, rules, rng), updates,
                        new_url=new_url, events=events)

    parse = False
    if isinstance(result, NotModified):
        updates["last_status"] = 304
    elif isinstance(result, Fetched):
        updates["last_status"] = result.status
        updates["etag"] = result.headers.get("etag", "")
        updates["last_modified"] = result.headers.get("last-modified", "")
        parse = body_hash is None or body_hash != state.body_hash
        # The hub as of this fetch (headers may change while the body does not); the
        # push renewal loop follows a change (#11). A scan of the head only: cheap.
        found = discover_push(result.headers, result.body, result.final_url)
        updates.update(hub=found.hub, self_url=found.self_url)
        if body_hash is not None:
            updates["body_hash"] = body_hash
    # A new body is judged by the worker that parses it (it resets or counts
    # the errors); an answer that needs no parse means the feed is healthy.
    if not parse:
        if state.consecutive_errors:
            events.append(_event("recovered", state, at))
        updates.update(consecutive_errors=0, last_error="")
    return Decision(now + healthy * rng.uniform(0.95, 1.05), updates, parse=parse,
                    new_url=new_url, events=events)
