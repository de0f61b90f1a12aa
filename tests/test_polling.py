"""The poller against the loopback feed farm: one behaviour per test, real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from ingest.keys import Keys
from ingest.models import Fetched, FetchFailed
from ingest.poll.fetch import conditional_get, new_session
from ingest.poll.poller import Poller
from ingest.poll.registry import add_feed, find_feed_id, load_feed
from ingest.poll.schedule import FeedState
from ingest.poll.scheduler import Scheduler
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from tests.conftest import running_worker
from tests.farm import HOSTS, Farm, sample_feed
from tests.helpers import collect_messages


@dataclass
class Rig:
    settings: Settings
    keys: Keys
    redis: aioredis.Redis
    pool: ArqRedis
    poller: Poller

    async def add(self, url: str, **kw: object) -> str:
        feed_id, _ = await add_feed(self.redis, self.keys, url, **kw)  # type: ignore[arg-type]
        return feed_id

    async def poll(self, feed_id: str) -> FeedState:
        """Make the feed due, claim it like a daemon would, poll it once."""
        await self.redis.zadd(self.keys.schedule, {feed_id: 0})
        claimed = await self.poller.scheduler.claim(time.time(), 60, 1000)
        assert feed_id in claimed
        await self.poller.poll_feed(feed_id)
        state = await load_feed(self.redis, self.keys, feed_id)
        assert state is not None
        return state

    async def due(self, feed_id: str) -> float | None:
        score = await self.redis.zscore(self.keys.schedule, feed_id)
        return None if score is None else score / 1000

    async def queued(self) -> int:
        return int(await self.pool.zcard(self.keys.queue))

    async def stat(self, name: str) -> int:
        value = await self.redis.hget(self.keys.stats, name)
        return int(value or 0)


def rig_settings(settings: Settings, **overrides: object) -> Settings:
    base = dict(min_interval=1, default_interval=60, max_interval=3600, redirect_trust_count=3,
                fetch_timeout=5.0, per_host_concurrency=2, host_min_delay=0.0)
    base.update(overrides)
    return dataclasses.replace(settings, **base)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def make_rig(settings: Settings, **overrides: object) -> AsyncIterator[Rig]:
    """A Poller with its own clients on the test Redis, closed afterwards."""
    s = rig_settings(settings, **overrides)
    redis = aioredis.Redis.from_url(s.redis_url)
    pool = await connect_arq(s)
    session = new_session(s)
    keys = Keys(s.namespace)
    poller = Poller(s, redis, pool, session, Scheduler(redis, keys, "test-daemon"))
    try:
        yield Rig(s, keys, redis, pool, poller)
    finally:
        await poller.session.close()
        await pool.aclose()
        await redis.aclose()


async def run_poller(rig: Rig, until: Callable[[], bool], timeout: float) -> None:
    """Run the poll loop until `until()` holds or `timeout` passes, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(rig.poller.run(stop))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def rig(settings: Settings) -> AsyncIterator[Rig]:
    async with make_rig(settings) as r:
        yield r


async def test_304_costs_no_parse(rig: Rig, farm: Farm) -> None:
    feed_id = await rig.add(farm.url("feed/a.xml"))
    first = await rig.poll(feed_id)
    assert first.last_status == "200" and first.etag
    assert await rig.queued() == 1  # one parse job
    second = await rig.poll(feed_id)
    assert second.last_status == "304"
    assert farm.hits("feed/a.xml")[-1].if_none_match == first.etag
    assert await rig.queued() == 1  # nothing more to parse
    assert await rig.stat("polls_not_modified") == 1


async def test_unchanged_body_is_not_parsed_again(rig: Rig, farm: Farm) -> None:
    feed_id = await rig.add(farm.url("plain/b.xml"))
    await rig.poll(feed_id)
    await rig.poll(feed_id)
    assert await rig.queued() == 1
    assert await rig.stat("polls_unchanged_body") == 1
    farm.feeds["b.xml"] = sample_feed("b", items=4)
    await rig.poll(feed_id)
    assert await rig.queued() == 2


async def test_permanent_redirect_moves_the_feed_only_once_trusted(rig: Rig, farm: Farm) -> None:
    old = farm.url("r301/c.xml")
    feed_id = await rig.add(old)
    pubsub = rig.redis.pubsub()
    await pubsub.subscribe(rig.keys.events_channel)
    for expected_url in (old, old):
        state = await rig.poll(feed_id)
        assert state.url == expected_url
        assert state.redirect_candidate == farm.url("feed/c.xml")
    state = await rig.poll(feed_id)
    assert state.url == farm.url("feed/c.xml")
    assert await find_feed_id(rig.redis, rig.keys, farm.url("feed/c.xml")) == feed_id
    [event] = [orjson.loads(m) for m in await collect_messages(pubsub, 1, timeout=2)]
    assert event["event"] == "moved" and event["to"] == farm.url("feed/c.xml")
    await pubsub.aclose()
    hits_before = len(farm.hits("r301/c.xml"))
    await rig.poll(feed_id)
    assert len(farm.hits("r301/c.xml")) == hits_before  # now fetched at the new URL


@pytest.mark.parametrize("status", ["r302", "r307"])
async def test_temporary_redirect_never_moves_the_feed(rig: Rig, farm: Farm, status: str) -> None:
    url = farm.url(f"{status}/d.xml")
    feed_id = await rig.add(url)
    for _ in range(4):
        state = await rig.poll(feed_id)
    assert state.url == url and not state.redirect_candidate
    assert state.last_status in ("200", "304")


async def test_a_flapping_permanent_redirect_is_not_trusted(rig: Rig, farm: Farm) -> None:
    url = farm.url("r301/e.xml")
    feed_id = await rig.add(url)
    await rig.poll(feed_id)
    await rig.poll(feed_id)
    await rig.redis.hset(rig.keys.feed(feed_id), "url", farm.url("r302/e.xml"))
    await rig.poll(feed_id)  # a temporary one breaks the streak
    await rig.redis.hset(rig.keys.feed(feed_id), "url", url)
    state = await rig.poll(feed_id)
    assert state.url == url and state.redirect_count == 1


async def test_410_disables_the_feed_with_its_reason(rig: Rig, farm: Farm) -> None:
    feed_id = await rig.add(farm.url("status/410"))
    pubsub = rig.redis.pubsub()
    await pubsub.subscribe(rig.keys.events_channel)
    state = await rig.poll(feed_id)
    assert state.disabled_reason == "gone (HTTP 410)"
    assert await rig.due(feed_id) is None
    [event] = [orjson.loads(m) for m in await collect_messages(pubsub, 1, timeout=2)]
    assert (event["event"], event["feed_id"], event["reason"]) == ("disabled", feed_id, "gone (HTTP 410)")
    await pubsub.aclose()


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured_without_counting_an_error(rig: Rig, farm: Farm, status: int) -> None:
    feed_id = await rig.add(farm.url(f"status/{status}?retry_after=120"))
    before = time.time()
    state = await rig.poll(feed_id)
    due = await rig.due(feed_id)
    assert due is not None and before + 119 <= due <= time.time() + 121
    assert state.consecutive_errors == 0 and state.last_status == str(status)


async def test_errors_back_off_and_disable_after_the_limit(rig: Rig, farm: Farm) -> None:
    rig.poller.rules = dataclasses.replace(rig.poller.rules, max_consecutive_errors=3)
    feed_id = await rig.add(farm.url("status/500"))
    delays = []
    for _ in range(2):
        start = time.time()
        state = await rig.poll(feed_id)
        due = await rig.due(feed_id)
        assert due is not None
        delays.append(due - start)
    assert state.consecutive_errors == 2
    assert delays[1] > delays[0] * 1.3  # exponential, with ±20% jitter
    state = await rig.poll(feed_id)
    assert state.disabled_reason.startswith("3 consecutive failures; last:") and "HTTP 500" in state.disabled_reason
    assert await rig.due(feed_id) is None


async def test_timeout_is_a_counted_failure(rig: Rig, farm: Farm) -> None:
    rig.poller.settings = dataclasses.replace(rig.settings, fetch_timeout=0.3)
    rig.poller.session = new_session(rig.poller.settings)
    try:
        feed_id = await rig.add(farm.url("slow/3/f.xml"))
        state = await rig.poll(feed_id)
    finally:
        await rig.poller.session.close()
    assert "timed out" in state.last_error and state.consecutive_errors == 1
    assert await rig.queued() == 0


async def test_oversize_body_is_aborted(rig: Rig, farm: Farm) -> None:
    small = dataclasses.replace(rig.settings, max_body_bytes=100_000)
    result = await conditional_get(rig.poller.session, farm.url("big/5000000"), small)
    assert isinstance(result, FetchFailed) and "exceeds the limit of 100000 bytes" in result.error
    result = await conditional_get(rig.poller.session, farm.url("big/50000"), small)
    assert isinstance(result, Fetched) and len(result.body) == 50000


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
async def test_compressed_bodies_arrive_decoded(rig: Rig, farm: Farm, encoding: str) -> None:
    farm.feeds["g.xml"] = sample_feed("g", items=50)
    result = await conditional_get(rig.poller.session, farm.url(f"{encoding}/g.xml"), rig.settings)
    assert isinstance(result, Fetched)
    assert result.body == farm.feeds["g.xml"]
    assert result.headers["content-encoding"] == encoding


async def test_a_slow_host_does_not_hold_up_the_others(settings: Settings, farm: Farm) -> None:
    async with make_rig(settings, per_host_concurrency=1, shutdown_grace=0.1) as rig:
        for i in range(3):
            await rig.add(farm.url(f"slow/2/s{i}.xml", host=HOSTS[1]))
            await rig.add(farm.url(f"plain/q{i}.xml", host=HOSTS[2]))
        await run_poller(rig, lambda: False, timeout=1.2)
    fast_done = [h for h in farm.log if h.host == HOSTS[2] and h.status == 200]
    slow_seen = [h for h in farm.log if h.host == HOSTS[1] and h.status == 200]
    assert len(fast_done) == 3  # all of the fast host's feeds, while...
    assert slow_seen == []  # ...the slow host has not answered even its first request
    assert max(v for k, v in farm.max_in_flight.items() if k.startswith(HOSTS[1])) == 1


async def test_shutdown_releases_the_leases_of_unfinished_fetches(settings: Settings, farm: Farm) -> None:
    async with make_rig(settings, shutdown_grace=0.2) as rig:
        feed_id = await rig.add(farm.url("slow/5/h.xml"))
        leased_until: list[float | None] = []

        async def leased() -> bool:
            return await rig.redis.hget(rig.keys.feed(feed_id), "lease") is not None

        stop = asyncio.Event()
        task = asyncio.create_task(rig.poller.run(stop))
        for _ in range(100):
            if await leased():
                break
            await asyncio.sleep(0.02)
        leased_until.append(await rig.redis.zscore(rig.keys.schedule, feed_id))
        stop.set()
        await asyncio.wait_for(task, 10)
        score = await rig.redis.zscore(rig.keys.schedule, feed_id)
        assert leased_until[0] is not None and leased_until[0] > (time.time() + 30) * 1000
        assert score is not None and score <= time.time() * 1000  # due again at once
        assert not await leased()


async def test_backpressure_stops_fetching_when_the_queue_is_full(settings: Settings, farm: Farm) -> None:
    async with make_rig(settings, queue_bound=3, poll_batch=1) as rig:
        for i in range(10):
            await rig.add(farm.url(f"plain/bp{i}.xml", host=HOSTS[i % 3]))
        await run_poller(rig, lambda: False, timeout=1.5)
        queued = await rig.queued()
    assert queued == 4  # waits once more than `queue_bound` jobs wait
    assert len(farm.hits("/plain/bp")) == 4


async def test_requests_to_one_host_are_spaced_by_the_minimum_delay(settings: Settings, farm: Farm) -> None:
    async with make_rig(settings, host_min_delay=0.3, per_host_concurrency=4, shutdown_grace=0.1) as rig:
        for i in range(4):
            await rig.add(farm.url(f"plain/md{i}.xml"))
        await run_poller(rig, lambda: len(farm.hits("/plain/md")) == 4, timeout=5)
    starts = sorted(h.start for h in farm.hits("/plain/md"))
    assert len(starts) == 4
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.28, gaps


async def test_308_moves_like_301(rig: Rig, farm: Farm) -> None:
    feed_id = await rig.add(farm.url("r308/m.xml"))
    for _ in range(3):
        state = await rig.poll(feed_id)
    assert state.url == farm.url("feed/m.xml")


async def test_our_own_outage_is_not_counted_against_the_feeds(rig: Rig, farm: Farm) -> None:
    from tests.conftest import free_port

    dead = [f"http://{HOSTS[i % 3]}:{free_port()}/feed.xml" for i in range(8)]  # nothing listens
    ids = [await rig.add(url) for url in dead]
    states = [await rig.poll(feed_id) for feed_id in ids]
    counted = [s.consecutive_errors for s in states]
    assert counted[:4] == [1, 1, 1, 1]  # until the pattern is clear, each failure counts
    assert counted[4:] == [0, 0, 0, 0]  # then: 5 failures on 3 hosts, no success = our outage
    assert all("cannot connect" in s.last_error for s in states)
    await rig.poll(await rig.add(farm.url("feed/ok.xml")))  # one success ends the outage
    again = await rig.poll(ids[-1])
    assert again.consecutive_errors == 1


async def test_retry_after_pauses_the_host_only_briefly(settings: Settings, farm: Farm) -> None:
    async with make_rig(settings, host_cooldown_cap=0.5, per_host_concurrency=1) as rig:
        limited = await rig.add(farm.url("status/429?retry_after=3600", host=HOSTS[1]))
        await rig.poll(limited)
        other = await rig.add(farm.url("plain/other.xml", host=HOSTS[1]))
        started = time.monotonic()
        await rig.poll(other)
        waited = time.monotonic() - started
        due = await rig.due(limited)
    assert 0.3 <= waited < 2.0  # the host paused, capped at host_cooldown_cap...
    assert due is not None and due >= time.time() + 3500  # ...the feed waits its full hour


async def test_a_configured_proxy_carries_the_requests(rig: Rig, farm: Farm) -> None:
    proxied = dataclasses.replace(rig.settings, proxy=farm.url("", host=HOSTS[2]).rstrip("/"))
    session = new_session(proxied)
    target = farm.url("feed/p.xml").replace("127.0.0.1", "localhost")
    result = await conditional_get(session, target, proxied)
    await session.close()
    assert isinstance(result, Fetched)
    [hit] = farm.hits("feed/p.xml")
    assert hit.via_proxy


async def test_workers_store_the_adaptive_interval_and_feed_hints(
    settings: Settings, farm: Farm, worker: None
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    items = "".join(
        f"<item><guid>t{i}</guid><title>T{i}</title><pubDate>"
        f"{(now - timedelta(hours=6 * i)).strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        for i in range(20)
    )
    farm.feeds["ttl.xml"] = (f'<rss version="2.0"><channel><title>T</title><ttl>120</ttl>{items}'
                             "</channel></rss>").encode()
    async with make_rig(settings) as rig:
        feed_id = await rig.add(farm.url("feed/ttl.xml"))
        state = await rig.poll(feed_id)
        for _ in range(100):  # the worker parses it
            state = await load_feed(rig.redis, rig.keys, feed_id) or state
            if state.adaptive_interval:
                break
            await asyncio.sleep(0.05)
    # 20 items in the last week, one every 6 hours: poll twice per gap = 7 days / 20 / 2.
    assert state.adaptive_interval == pytest.approx(7 * 86400 / 20 / 2, rel=0.01)
    assert state.feed_min_interval == 7200  # <ttl>120</ttl>
    assert state.items == 20


async def test_a_feed_that_stops_being_a_feed_is_disabled(settings: Settings, farm: Farm) -> None:
    """A URL that now serves a web page answers 200, so only the worker sees the failure."""
    strict = dataclasses.replace(settings, max_consecutive_errors=3)
    farm.feeds["turned.xml"] = b"<!doctype html><html><body><p>Log in to continue</p></body></html>"
    async with running_worker(strict), make_rig(strict) as rig:
        feed_id = await rig.add(farm.url("plain/turned.xml"))
        pubsub = rig.redis.pubsub()
        await pubsub.subscribe(rig.keys.events_channel)
        for attempt in range(1, 4):
            await rig.poll(feed_id)
            for _ in range(100):  # the worker's verdict
                state = await load_feed(rig.redis, rig.keys, feed_id)
                if state and state.consecutive_errors == attempt:
                    break
                await asyncio.sleep(0.05)
            assert state is not None and state.consecutive_errors == attempt
        assert state.disabled_reason.startswith("3 consecutive failures; last:")
        assert "not a feed" in state.disabled_reason
        assert await rig.due(feed_id) is None
        events = [orjson.loads(m) for m in await collect_messages(pubsub, 1, timeout=2)]
        assert [e["event"] for e in events] == ["disabled"]
        await pubsub.aclose()


async def test_outcomes_ending_together_are_recorded_in_one_batch_and_check_each_lease(
    settings: Settings, farm: Farm
) -> None:
    """CompletionBatcher: polls ending in one loop turn share one script call; a feed whose
    lease another daemon took meanwhile keeps that daemon's claim, the others are recorded."""
    from ingest.poll.completions import CompletionBatcher

    async with make_rig(settings) as rig:
        ids = [await rig.add(farm.url(f"feed/batch{i}.xml")) for i in range(3)]
        await rig.redis.zadd(rig.keys.schedule, dict.fromkeys(ids, 0))
        assert sorted(await rig.poller.scheduler.claim(time.time(), 60, 10)) == sorted(ids)
        await rig.redis.hset(rig.keys.feed(ids[1]), "lease", "another-daemon")
        batcher = CompletionBatcher(rig.poller.scheduler)
        await batcher.complete("unknown-feed", None, {})  # loads the script: EVALSHA from here on
        await rig.redis.config_resetstat()
        held = await asyncio.gather(*(batcher.complete(i, 5000.0, {"last_status": 304}, "polls_not_modified")
                                      for i in ids))
        assert held == [True, False, True]
        # One script call for the batch on one Redis (#21); on a cluster one per feed hash, each
        # in its own slot (#13), all in one pipeline.
        script_calls = (await rig.redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls")
        assert script_calls == (len(ids) if rig.keys.cluster else 1)
        for i in (ids[0], ids[2]):
            assert await rig.due(i) == 5000.0
            assert await rig.redis.hmget(rig.keys.feed(i), ["lease", "last_status"]) == [None, b"304"]
        assert await rig.redis.hget(rig.keys.feed(ids[1]), "lease") == b"another-daemon"
        assert await rig.stat("polls_not_modified") == 2


async def test_ended_polls_make_room_for_the_next_claims_and_leave_nothing_in_flight(
    settings: Settings, farm: Farm, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Decision 165: a poll's task takes itself out of `in_flight` (no done callback), a
    crashed one too; with room for 3 polls at once, all 12 feeds are polled and counted."""
    async with make_rig(settings, poll_batch=3, queue_bound=100) as rig:
        ids = [await rig.add(farm.url(f"plain/room{i}.xml", host=HOSTS[i % 3])) for i in range(12)]
        crashing = ids[5]
        poll_feed = rig.poller.poll_feed

        async def poll_or_crash(feed_id: str, state: FeedState | None = None) -> None:
            if feed_id == crashing:
                raise RuntimeError("a surprise")
            await poll_feed(feed_id, state)

        monkeypatch.setattr(rig.poller, "poll_feed", poll_or_crash)
        seen: list[int] = []

        def all_ended() -> bool:
            seen.append(len(rig.poller.in_flight))
            return len(farm.hits("/plain/room")) == 11 and not rig.poller.in_flight

        await run_poller(rig, all_ended, timeout=10)
        assert len(farm.hits("/plain/room")) == 11 and rig.poller.in_flight == {}
        assert max(seen) <= 3
        assert await rig.stat("poll_crashes") == 1
        for feed_id in ids:
            leased = await rig.redis.hget(rig.keys.feed(feed_id), "lease")
            assert (leased is None) == (feed_id != crashing)
