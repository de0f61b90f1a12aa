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
import contextlib
import email.utils
import re
from collections.abc import AsyncIterator, Mapping
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


@dataclass
class _Host:
    semaphore: asyncio.Semaphore
    next_request_at: float = 0.0  # loop time before which no request may start
    users: int = 0


@dataclass
class HostPacer:
    """At most `per_host` requests in flight to one host, `min_delay` seconds apart."""

    per_host: int
    min_delay: float
    cooldown_cap: float
    _hosts: dict[str, _Host] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(asyncio.Semaphore(self.per_host))
        state.users += 1
        try:
            async with state.semaphore:
                loop = asyncio.get_running_loop()
                # Reserve our start time before sleeping, so waiters queue up
                # min_delay apart instead of all waking at once.
                start = max(loop.time(), state.next_request_at)
                state.next_request_at = start + self.min_delay
                delay = start - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield
        finally:
            state.users -= 1
            if state.users == 0 and state.next_request_at <= asyncio.get_running_loop().time():
                del self._hosts[host]  # idle hosts cost no memory

    def cool_down(self, host: str, seconds: float) -> None:
        """The host said it is overloaded: pause its requests, capped."""
        state = self._hosts.get(host)
        if state is None:  # the request's slot is already released: keep the pause anyway
            state = self._hosts[host] = _Host(asyncio.Semaphore(self.per_host))
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
