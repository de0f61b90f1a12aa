"""A deadline for each document's parse + normalize that holds inside CPU-bound Python.

Why: parsing and normalizing run synchronously, so arq's `job_timeout`
(an asyncio cancellation) cannot interrupt them: a document with a million
attributes on one element kept feedparser busy for minutes while every other
job of the process waited (issue #12). Here a per-document budget of
`parse_deadline` seconds is spent only inside `section()` blocks (the
synchronous stretches of the pipeline; the awaits between them are not
counted). While a section runs, an interval timer (`signal.setitimer`,
SIGALRM) is armed for the rest of the budget; when it fires, the handler
raises `ParseDeadlineExceeded` in the main thread at the next bytecode, so
even a pure-Python loop deep inside feedparser stops. The task turns it into
a counted dead letter and the memory of the half-built document is released.

`ParseDeadlineExceeded` derives from BaseException, like KeyboardInterrupt:
feedparser, the normalizer and the per-entry guard catch `Exception`, and
must not swallow it.

Signals reach only the main thread, and a process has one SIGALRM, so the
deadline is armed only where `install()` was called: the main thread of a
worker process (`ingest worker`, and the workers `ingest run` starts). A
worker run in someone else's event loop (tests) has no deadline; the
supervisor's stall check (workers/liveness.py) is the backstop for what a
signal cannot stop (C code that never returns to the interpreter).
"""

from __future__ import annotations

import contextlib
import contextvars
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import ParamSpec, TypeVar

__all__ = [
    "Budget", "ParseDeadlineExceeded", "bounded", "current", "current_reset", "install", "installed",
    "on_section_end", "section", "start",
]

P = ParamSpec("P")
R = TypeVar("R")


class ParseDeadlineExceeded(BaseException):
    """The document's parse + normalize ran past `parse_deadline` seconds."""


class _State:
    installed = False
    armed = False  # a section is running: an alarm now is ours to raise
    seconds = 0.0  # the deadline of the document whose section is armed (for the message)


_STATE = _State()
# Called after every section, interrupted or not: the interpreter is alive. The worker's
# stall check listens (workers/liveness.py): sections of several documents or article
# pages run back to back in one turn of the event loop, and must not add up to a "stall".
_SECTION_END: list[Callable[[], None]] = []


def on_section_end(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` after each section; returns the function that stops it."""
    _SECTION_END.append(callback)
    return lambda: _SECTION_END.remove(callback) if callback in _SECTION_END else None


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _STATE.armed:
        _STATE.armed = False
        raise ParseDeadlineExceeded(f"parse deadline exceeded ({_STATE.seconds:g} s)")


def install() -> bool:
    """Take SIGALRM for parse deadlines; only from the main thread. True if installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGALRM, _on_alarm)
    _STATE.installed = True
    return True


def installed() -> bool:
    return _STATE.installed


class Budget:
    """Seconds left for one document; spent by its sections."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.remaining = seconds


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("parse_budget", default=None)


def start(seconds: float) -> contextvars.Token[Budget | None]:
    """Give the current task (one job) a fresh budget; reset with the returned token."""
    return _CURRENT.set(Budget(seconds))


def current() -> Budget | None:
    return _CURRENT.get()


def current_reset(token: contextvars.Token[Budget | None]) -> None:
    """End the budget `start` gave (the job is done with its document)."""
    _CURRENT.reset(token)


@contextlib.contextmanager
def section() -> Iterator[None]:
    """A synchronous stretch of work charged to the current budget (none: unbounded).

    Must not contain an await: the timer is per process, and another job's
    code must never run while it is armed.
    """
    budget = _CURRENT.get()
    if budget is None or not _STATE.installed:
        try:
            yield
        finally:
            _ended()
        return
    if budget.remaining <= 0:
        raise ParseDeadlineExceeded(f"parse deadline exceeded ({budget.seconds:g} s)")
    began = time.monotonic()
    _STATE.seconds = budget.seconds
    _STATE.armed = True
    signal.setitimer(signal.ITIMER_REAL, budget.remaining)
    try:
        yield
    finally:
        _STATE.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        budget.remaining -= time.monotonic() - began
        _ended()


def _ended() -> None:
    for callback in _SECTION_END:
        callback()


def bounded(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`func(*args, **kwargs)` as a section of its own (one entry's normalization)."""
    with section():
        return func(*args, **kwargs)
