"""Telling our own outage from the feeds' failures.

When DNS or the network is down on our side, every host fails at once; those
failures must not count against the feeds (or a short outage would disable
thousands of them). The rule: within the last `window` seconds, if at least
`min_failures` network-level failures (DNS, refused, unreachable) came from at
least `min_hosts` distinct hosts and not one request succeeded, we are in an
outage. Any success ends it. Pure apart from holding the recent outcomes;
the caller passes the time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["OutageDetector"]


@dataclass
class OutageDetector:
    window: float = 60.0
    min_failures: int = 5
    min_hosts: int = 3
    _failures: deque[tuple[float, str]] = field(default_factory=deque)
    _last_success: float = float("-inf")

    def success(self, now: float) -> None:
        self._last_success = now
        self._failures.clear()

    def network_failure(self, host: str, now: float) -> None:
        self._failures.append((now, host))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._failures and self._failures[0][0] < now - self.window:
            self._failures.popleft()
        while len(self._failures) > 1000:  # bounded memory
            self._failures.popleft()

    def active(self, now: float) -> bool:
        self._trim(now)
        if self._last_success >= now - self.window:
            return False
        hosts = {host for _, host in self._failures}
        return len(self._failures) >= self.min_failures and len(hosts) >= self.min_hosts
