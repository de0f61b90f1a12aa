"""The cheaper 304 poll (#21) keeps its behaviour: fetch deadlines from the coarse timer,
the bounded cache of parsed URLs, the per-host pacer's slots, the parse queue's bound,
the FeedState reader, the collector's pace and the timestamp of a fetch."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ingest.errors import URLRefused
from ingest.models import FetchFailed
from ingest.poll.enqueue import QueueRoom
from ingest.poll.fetch import conditional_get, new_session, utc_now_iso
from ingest.poll.politeness import HostPacer
from ingest.poll.schedule import _HASH_READERS, FeedState
from ingest.poll.timeouts import RESOLUTION, deadline
from ingest.poll.urlguard import ParsedURLs, check_url, pacing_host, parse_networks
from ingest.settings import Settings

# --- the coarse timer -------------------------------------------------------------------


async def test_a_deadline_fires_as_a_timeout_never_early_at_most_a_tick_late() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        with deadline(0.2):
            await asyncio.sleep(5)
    took = time.monotonic() - started
    assert 0.2 <= took < 0.2 + RESOLUTION + 0.1, took


async def test_a_deadline_not_reached_changes_nothing() -> None:
    with deadline(0.2):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # the timer looks again meanwhile: nothing left to cancel
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    async def guarded() -> None:
        with deadline(0.1):
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.12)  # the deadline passes; cancel in the same turn as its timer may
    task.cancel()
    with pytest.raises((asyncio.CancelledError, TimeoutError)):
        await task
    task2 = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task2.cancel()  # long before the deadline: a plain cancellation
    with pytest.raises(asyncio.CancelledError):
        await task2


@pytest.fixture
def hanging_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback server that accepts, reads the request and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed.xml", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


async def test_a_fetch_from_a_server_that_never_answers_times_out(
        hanging_server: tuple[str, list[socket.socket]]) -> None:
    url, accepted = hanging_server
    settings = Settings(allow_networks="127.0.0.0/8", fetch_timeout=0.3)
    session = new_session(settings)
    try:
        started = time.monotonic()
        result = await asyncio.wait_for(conditional_get(session, url, settings, etag='"v1"'), 5)
        took = time.monotonic() - started
    finally:
        await session.close()
    assert isinstance(result, FetchFailed) and "timed out after 0.3 s" in result.error, result
    assert not result.refused and not result.network
    assert 0.3 <= took < 0.3 + RESOLUTION + 0.2, took
    assert accepted  # it did connect: the wait was for the answer


# --- the cache of parsed URLs -------------------------------------------------------------


def test_the_url_cache_stays_bounded_and_answers_as_the_guard_does() -> None:
    cache = ParsedURLs(size=3, lifetime=3600)
    urls = [f"http://news{i}.example/feed.xml" for i in range(10)]
    for _ in range(2):
        for url in urls:
            entry = cache.get(url)
            assert str(entry.parsed) == url and entry.hostname == f"news{urls.index(url)}.example"
            assert len(cache) <= 3
    # Full, it keeps its oldest entries (a poller's feeds come round in turn).
    assert cache.get(urls[0]) is cache.get(urls[0])


def test_the_url_cache_starts_over_after_its_lifetime() -> None:
    cache = ParsedURLs(size=2, lifetime=0.05)
    first = cache.get("http://a.example/")
    cache.get("http://b.example/")
    time.sleep(0.06)
    cache.get("http://c.example/")  # full and old: everything goes, c comes in
    assert len(cache) == 1
    assert cache.get("http://a.example/") is not first


@pytest.mark.parametrize("url", ["ftp://a.example/feed", "http:///nohost", "http://a.example:99999/"])
def test_a_bad_url_is_refused_every_time_it_is_asked(url: str) -> None:
    for _ in range(3):  # the refusal is cached, and still raised
        with pytest.raises(URLRefused, match="refused"):
            check_url(url)
    assert pacing_host(url) == ""


def test_the_verdict_on_a_host_follows_the_allowed_networks() -> None:
    url = "http://127.0.0.1:8080/feed.xml"
    open_ = tuple(parse_networks("127.0.0.0/8"))
    with pytest.raises(URLRefused, match="loopback"):
        check_url(url)
    assert str(check_url(url, open_)) == url  # the same cached URL, other networks
    with pytest.raises(URLRefused, match="loopback"):
        check_url(url, ())
    assert str(check_url(url, list(open_))) == url  # any sequence, not only the tuple


async def test_a_refused_feed_is_counted_and_disabled_without_a_request(settings: Settings) -> None:
    from tests.test_polling import make_rig

    async with make_rig(settings) as rig:
        feed_id = await rig.add("http://127.0.0.1:1/feed.xml")
        rig.poller.settings = dataclasses.replace(rig.settings, allow_networks="")  # closed again
        state = await rig.poll(feed_id)
        assert state.disabled_reason.startswith("refused:") and "loopback" in state.disabled_reason
        assert await rig.due(feed_id) is None
        assert await rig.stat("polls_failed") == 1


# --- the pacer's slots --------------------------------------------------------------------


async def test_the_pacer_hands_slots_over_in_order_and_survives_cancelled_waiters() -> None:
    pacer = HostPacer(per_host=1, min_delay=0.0, cooldown_cap=10)
    order: list[str] = []
    release_a = asyncio.Event()

    async def poll(name: str, hold: asyncio.Event | None = None) -> None:
        async with pacer.slot("h.example"):
            order.append(name)
            if hold is not None:
                await hold.wait()

    a = asyncio.create_task(poll("a", release_a))
    await asyncio.sleep(0)
    b = asyncio.create_task(poll("b"))
    c = asyncio.create_task(poll("c"))
    d = asyncio.create_task(poll("d"))
    await asyncio.sleep(0.01)
    assert order == ["a"]  # one slot: the others wait
    b.cancel()  # a waiter gives up: its place must not be lost nor kept
    await asyncio.sleep(0)
    release_a.set()
    await asyncio.gather(a, c, d)
    assert order == ["a", "c", "d"]
    assert b.cancelled()
    assert pacer.hosts_tracked == 0  # idle hosts cost no memory


async def test_a_waiter_cancelled_as_its_turn_comes_passes_the_slot_on() -> None:
    pacer = HostPacer(per_host=1, min_delay=0.0, cooldown_cap=10)
    ran: list[str] = []
    hold = asyncio.Event()
    tasks: dict[str, asyncio.Task[None]] = {}

    async def poll(name: str) -> None:
        async with pacer.slot("h.example"):
            ran.append(name)
            if name == "a":
                await hold.wait()
        if name == "a":  # the slot is b's now, and b has not run yet: cancel it there
            tasks["b"].cancel()

    tasks["a"] = asyncio.create_task(poll("a"))
    await asyncio.sleep(0)
    tasks["b"] = asyncio.create_task(poll("b"))
    tasks["c"] = asyncio.create_task(poll("c"))
    await asyncio.sleep(0.01)
    hold.set()
    await asyncio.wait_for(tasks["c"], 2)  # without the pass, c would wait forever
    assert ran == ["a", "c"] and tasks["b"].cancelled()
    assert pacer.hosts_tracked == 0


async def test_the_pacer_still_caps_and_spaces_requests() -> None:
    pacer = HostPacer(per_host=2, min_delay=0.05, cooldown_cap=10)
    inside, most, starts = 0, 0, []

    async def poll() -> None:
        nonlocal inside, most
        async with pacer.slot("h.example"):
            starts.append(time.monotonic())
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(poll() for _ in range(6)))
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert most <= 2 and min(gaps) >= 0.045, (most, gaps)


# --- the parse queue's bound ----------------------------------------------------------------


class _CountingPool:
    def __init__(self, length: int) -> None:
        self.length = length
        self.asked = 0

    async def zcard(self, key: str) -> int:
        self.asked += 1
        return self.length


async def test_the_queue_length_is_read_again_only_when_this_poller_could_have_filled_it() -> None:
    from ingest.keys import Keys

    pool = _CountingPool(length=1)
    room = QueueRoom(pool, Keys("t"), bound=3, look_seconds=60)  # type: ignore[arg-type]
    stop = asyncio.Event()
    for _ in range(5):  # 304s: nothing queued, one read
        assert await room.wait(stop)
    assert pool.asked == 1
    room.queued()
    room.queued()  # 1 + 2 = 3: still within the bound, no read
    assert await room.wait(stop) and pool.asked == 1
    room.queued()  # 1 + 3 > 3: it may be full now, so it asks
    pool.length = 4
    waiting = asyncio.create_task(room.wait(stop))
    await asyncio.sleep(0.12)
    assert not waiting.done() and pool.asked >= 2  # full: the poller waits
    pool.length = 0
    assert await asyncio.wait_for(waiting, 3)


# --- FeedState, the collector, the timestamp ------------------------------------------------


def test_feed_state_reads_bytes_and_text_hashes_alike() -> None:
    raw = {b"url": b"http://a.example/f", b"tags": b"world,,asia", b"interval": b"120",
           b"consecutive_errors": b"2", b"redirect_count": b"1.0", b"adaptive_interval": b"bad",
           b"feed_min_interval": b"0", b"etag": "\u00e9t\u00e9".encode(), b"lease": b"x", b"unknown": b"y"}
    from_bytes = FeedState.from_hash("f1", raw)
    from_text = FeedState.from_hash("f1", {k.decode(): v.decode() for k, v in raw.items()})
    assert from_bytes == from_text
    assert from_bytes.tags == ("world", "asia") and from_bytes.interval == 120.0
    assert from_bytes.consecutive_errors == 2 and from_bytes.redirect_count == 1
    assert from_bytes.adaptive_interval == 0.0 and from_bytes.etag == "\u00e9t\u00e9"
    assert from_bytes.title == "" and from_bytes.items == 0  # missing: the defaults
    assert FeedState.from_hash("f2", {b"url": b"u"}) == FeedState(feed_id="f2", url="u")


def test_feed_state_skips_only_values_that_read_as_the_default() -> None:
    """Each field with "", "0", "0.0", "7" and "x", read by the skipping loop (decision
    158), against the field's own reader applied to the text: "0" is a text field's
    value and a tag list's one tag, only a number's default."""
    names = [f.name for f in dataclasses.fields(FeedState) if f.name != "feed_id"]
    for text in ("", "0", "0.0", "7", "x"):
        raw = {name.encode(): text.encode() for name in names}
        expected = FeedState(feed_id="f", **{  # type: ignore[arg-type]
            name: text if _HASH_READERS[name] is None else _HASH_READERS[name](text)  # type: ignore[misc]
            for name in names})
        assert FeedState.from_hash("f", raw) == expected, text
        assert FeedState.from_hash("f", {k.decode(): v.decode() for k, v in raw.items()}) == expected, text
    zero = FeedState.from_hash("f", {b"url": b"0", b"tags": b"0", b"interval": b"0", b"items": b"0"})
    assert (zero.url, zero.tags, zero.interval, zero.items) == ("0", ("0",), 0.0, 0)
    assert type(zero.interval) is float and type(zero.items) is int


def test_utc_now_iso_is_now_in_the_record_format() -> None:
    for _ in range(3):
        before = datetime.now(UTC)
        stamp = utc_now_iso()
        after = datetime.now(UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert before.replace(microsecond=0) <= when <= after
        time.sleep(0.4)  # across a second boundary now and then


def test_ingest_run_paces_the_collector() -> None:
    code = ("import gc; from ingest.gcpace import YOUNG_THRESHOLD, pace_collector; pace_collector(); "
            "print(gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_freeze_count() > 1000)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
