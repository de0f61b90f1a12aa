"""Fetch timeouts from one coarse timer per event loop, instead of aiohttp's per request.

aiohttp's total timeout costs every request a loop timer (armed, then cancelled),
a TimeoutHandle, and a TimerContext entered on every read of the response (each
entry asks asyncio for the current task): ~10 us of a 304 poll's CPU (#21),
for a limit (`fetch_timeout`, 30 s by default) that no healthy fetch comes near.

Here a fetch registers its deadline in its loop's `CoarseTimer` (a dict insert, and
a delete when it ends); while any deadline is registered the timer looks at all of
them every `RESOLUTION` seconds and cancels the task of each one past its
deadline, which `deadline()` turns into TimeoutError as `asyncio.timeout` does.
So a fetch times out up to `RESOLUTION` (50 ms) after its deadline, never
before; one look costs a pass over the fetches in flight (`poll_batch`, a few
hundred), 20 times a second, and nothing while none is in flight.
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType

__all__ = ["RESOLUTION", "CoarseTimer", "Deadline", "deadline"]

RESOLUTION = 0.05  # seconds between two looks: how late a timeout may fire


class Deadline:
    """`with deadline(seconds):` inside a task: TimeoutError once it has run that long
    (plus up to RESOLUTION). Not reentrant; one per `with`."""

    __slots__ = ("_cancelling", "_loop", "_task", "_timer", "expired", "when")

    def __init__(self, timer: CoarseTimer, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._timer = timer
        self._loop = loop
        self.when = loop.time() + seconds
        self.expired = False
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0

    def __enter__(self) -> Deadline:
        task = asyncio.current_task(self._loop)
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._timer.add(self, self._loop)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._timer.discard(self)
        if self.expired and exc_type is asyncio.CancelledError:
            assert self._task is not None
            # Ours alone (no one else cancelled the task meanwhile): a timeout.
            if self._task.uncancel() <= self._cancelling:
                raise TimeoutError from exc

    def expire(self) -> None:
        """Called by the timer once the deadline has passed."""
        if not self.expired and self._task is not None and not self._task.done():
            self.expired = True
            self._task.cancel()


class CoarseTimer:
    """The deadlines of one event loop, looked at every `resolution` seconds while any is set.

    It keeps no reference to its loop (the loop's pending look does, while there is one),
    so a loop that is closed and dropped takes its timer with it."""

    def __init__(self, resolution: float = RESOLUTION) -> None:
        self.resolution = resolution
        self._deadlines: dict[Deadline, None] = {}  # insertion-ordered set
        self._looking = False  # a look is scheduled

    def add(self, entry: Deadline, loop: asyncio.AbstractEventLoop) -> None:
        self._deadlines[entry] = None
        if not self._looking:
            self._looking = True
            loop.call_later(self.resolution, self._look, loop)

    def discard(self, entry: Deadline) -> None:
        self._deadlines.pop(entry, None)

    def __len__(self) -> int:
        return len(self._deadlines)

    def _look(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for entry in [e for e in self._deadlines if e.when <= now]:
            del self._deadlines[entry]
            entry.expire()
        self._looking = bool(self._deadlines)
        if self._looking:
            loop.call_later(self.resolution, self._look, loop)


_TIMERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CoarseTimer] = weakref.WeakKeyDictionary()
_last: tuple[weakref.ref[asyncio.AbstractEventLoop], CoarseTimer] | None = None  # a process has one loop


def deadline(seconds: float) -> Deadline:
    """A deadline `seconds` from now on the running loop's coarse timer."""
    global _last
    loop = asyncio.get_running_loop()
    if _last is not None and _last[0]() is loop:
        return Deadline(_last[1], loop, seconds)
    timer = _TIMERS.get(loop)
    if timer is None:
        timer = _TIMERS[loop] = CoarseTimer()
    _last = (weakref.ref(loop), timer)
    return Deadline(timer, loop, seconds)
