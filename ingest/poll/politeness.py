"""Politeness toward publishers: header predicates (pure) and per-host pacing.

The predicates are small and table-tested: what Retry-After asks, what
Cache-Control allows, which statuses mean "not modified", "rate limited",
"gone" or "moved for good". `HostPacer` is the only stateful part: a
concurrency cap per host plus a minimum gap between two requests to one host,
and a short cooldown when a host says it is overloaded (429/503). The cooldown
is capped (`host_cooldown_cap`) so that one feed's long Retry-After delays that
feed, not every other feed on the host for hours.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "HostPacer",
    "cache_max_age",
    "is_gone",
    "is_modified",
    "is_permanent_redirect",
    "is_rate_limited",
    "is_redirect",
    "retry_after",
]


def is_modified(status: int) -> bool:
    return status != 304


def is_redirect(status: int) -> bool:
    return status in (301, 302, 303, 307, 308)


def is_permanent_redirect(status: int) -> bool:
    """301 and 308 move a feed for good; 302, 303 and 307 do not."""
    return status in (301, 308)


def is_gone(status: int) -> bool:
    return status == 410


def is_rate_limited(status: int) -> bool:
    """The server asks us to come back later (and may say when, in Retry-After)."""
    return status in (429, 503)


def retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds Retry-After asks for (delta-seconds or HTTP-date), None if absent or nonsense."""
    value = _header(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)


def cache_max_age(headers: Mapping[str, str]) -> float | None:
    """Seconds the response may be reused for (Cache-Control max-age), if given."""
    value = _header(headers, "cache-control")
    if not value:
        return None
    match = _MAX_AGE.search(value)
    return float(match.group(1)) if match else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, v in headers.items():
            if key.lower() == name:
                return v
    return value


class _Host:
    """One host's pacing: requests in flight, who waits for a turn, the next allowed start."""

    __slots__ = ("active", "next_request_at", "users", "waiters")

    def __init__(self) -> None:
        self.active = 0  # requests holding a slot
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.next_request_at = 0.0  # loop time before which no request may start
        self.users = 0  # holding or waiting


class _Slot:
    """`async with pacer.slot(host)`: a plain object, where an asynccontextmanager and an
    asyncio.Semaphore cost a 304 poll ~10 us (#21). A free slot is taken without a
    suspension; when the host is full, slots are handed over in arrival order."""

    __slots__ = ("host", "pacer", "state")

    def __init__(self, pacer: HostPacer, host: str) -> None:
        self.pacer = pacer
        self.host = host
        self.state: _Host | None = None

    async def __aenter__(self) -> None:
        pacer, host = self.pacer, self.host
        state = pacer._hosts.get(host)
        if state is None:
            state = pacer._hosts[host] = _Host()
        self.state = state
        state.users += 1
        try:
            if state.active < pacer.per_host and not state.waiters:
                state.active += 1
            else:
                await _wait_turn(state)
            try:
                loop = asyncio.get_running_loop()
                now = loop.time()
                if state.next_request_at <= now and pacer.min_delay <= 0:
                    return
                # Reserve our start time before sleeping, so waiters queue up
                # min_delay apart instead of all waking at once.
                start = max(now, state.next_request_at)
                state.next_request_at = start + pacer.min_delay
                if start > now:
                    await asyncio.sleep(start - now)
            except BaseException:
                _hand_over(state)
                raise
        except BaseException:
            self._leave(state)
            raise

    async def __aexit__(self, *exc: object) -> None:
        state = self.state
        assert state is not None
        _hand_over(state)
        self._leave(state)

    def _leave(self, state: _Host) -> None:
        state.users -= 1
        if state.users == 0 and state.next_request_at <= asyncio.get_running_loop().time():
            self.pacer._hosts.pop(self.host, None)  # idle hosts cost no memory


async def _wait_turn(state: _Host) -> None:
    """Wait until a leaving request hands its slot over (the slot is then ours)."""
    turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    state.waiters.append(turn)
    try:
        await turn
    except BaseException:
        if turn.done() and not turn.cancelled():
            _hand_over(state)  # handed to us as we were cancelled: pass it on
        else:
            with contextlib.suppress(ValueError):
                state.waiters.remove(turn)
        raise


def _hand_over(state: _Host) -> None:
    """Give a slot up: to the first request still waiting, else back to the host."""
    while state.waiters:
        turn = state.waiters.popleft()
        if not turn.done():
            turn.set_result(None)
            return
    state.active -= 1


@dataclass
class HostPacer:
    """At most `per_host` requests in flight to one host, `min_delay` seconds apart."""

    per_host: int
    min_delay: float
    cooldown_cap: float
    _hosts: dict[str, _Host] = field(default_factory=dict)

    def slot(self, host: str) -> _Slot:
        return _Slot(self, host)

    def cool_down(self, host: str, seconds: float) -> None:
        """The host said it is overloaded: pause its requests, capped."""
        state = self._hosts.get(host)
        if state is None:  # the request's slot is already released: keep the pause anyway
            state = self._hosts[host] = _Host()
        until = asyncio.get_running_loop().time() + min(seconds, self.cooldown_cap)
        state.next_request_at = max(state.next_request_at, until)

    def prune(self) -> None:
        """Forget idle hosts whose pause is over (called now and then by the poller)."""
        now = asyncio.get_running_loop().time()
        for host in [h for h, st in self._hosts.items() if st.users == 0 and st.next_request_at <= now]:
            del self._hosts[host]

    @property
    def hosts_tracked(self) -> int:
        return len(self._hosts)
