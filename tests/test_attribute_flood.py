"""An attribute flood is stopped at the parse deadline on any lxml (#19 item 1).

lxml 6.2 (libxml2 2.14) reads `attrib.items()` of an element with 60,000
attributes in ~10 s of C code, which SIGALRM cannot interrupt: the fast path
held the worker past its deadline until the liveness check killed it. The
fast reader now counts an element's attributes (linear) before reading them
and declines an element carrying more than its vocabulary allows; feedparser
then reads the document under the deadline, in Python, where the alarm
stops it. A million attributes overflow lxml's buffer limit and take the
same way. These run in this process with the deadline installed, on whatever
lxml is installed (`make test` on the lock, `make test-latest` on the newest).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import lxml
import pytest

from tests.test_deadline import hostile_feed
from workers import deadline
from workers.fastfeed import parse_fast
from workers.parse import parse_feed_bytes

DEADLINE = 2.0


@pytest.fixture
def armed_deadline() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGALRM)
    assert deadline.install()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        deadline._STATE.installed = False


@pytest.mark.parametrize("count", [60_000, 1_000_000])
def test_the_fast_reader_declines_an_attribute_flood_before_reading_it(count: int) -> None:
    body = hostile_feed(count)
    began = time.monotonic()
    assert parse_fast(body, {"content-type": "application/rss+xml"}) is None
    # Declining is a count, not a read: far inside the deadline (the unguarded read
    # took ~10 s on lxml 6.2 for 60,000).
    assert time.monotonic() - began < DEADLINE, lxml.__version__


@pytest.mark.parametrize("count", [60_000, 1_000_000])
def test_an_attribute_flood_is_stopped_at_the_parse_deadline(count: int, armed_deadline: None) -> None:
    body = hostile_feed(count)
    token = deadline.start(DEADLINE)
    began = time.monotonic()
    try:
        with pytest.raises(deadline.ParseDeadlineExceeded), deadline.section():
            parse_feed_bytes(body, {"content-type": "application/rss+xml"}, "http://127.0.0.1/hostile.xml")
    finally:
        deadline.current_reset(token)
    # The alarm fired and was obeyed: not the minutes of an unbounded parse, nor C
    # code running on past it (loose bound: a shared machine).
    assert DEADLINE <= time.monotonic() - began < DEADLINE + 5, lxml.__version__
