"""One host's limits shared by the poller and the article fetchers (#15).

Two article fetchers with their own HTTP sessions and Redis clients (as two
worker processes have) and a poller, all fetching from one loopback host that
records when each request begins and ends: the host never sees more than
`per_host_concurrency` requests at once, nor two starts closer than
`host_min_delay`. Polls of a host no article comes from never touch Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from ingest.keys import Keys
from ingest.poll.fetch import new_session
from ingest.poll.hostslots import ANNOUNCE_SECONDS, VIEW_VALID_SECONDS, HostSlots, PollGate
from ingest.settings import Settings
from tests.conftest import DATA_DIR
from tests.farm import sample_feed
from tests.test_polling import make_rig, run_poller
from tests.threaded_app import ThreadedApp
from workers.article.fetch import ArticleFetcher

PAGE = (DATA_DIR / "articles" / "jsonld-only.html").read_bytes()


class BusyHost(ThreadedApp):
    """A host that takes `hold` seconds per answer (`slow_hold` for /feed/slow*) and notes
    (path, start, end) of each."""

    name = "busy-host"

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold
        self.slow_hold = 2.5
        self.log: list[tuple[str, float, float]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handler(self, request: web.Request) -> web.StreamResponse:
        start = time.monotonic()
        try:
            await asyncio.sleep(self.slow_hold if request.path.startswith("/feed/slow") else self.hold)
            if request.path.startswith("/feed/"):
                return web.Response(body=sample_feed(request.path.rsplit("/", 1)[1]),
                                    headers={"Content-Type": "application/rss+xml"})
            if request.path.startswith("/news/"):
                return web.Response(body=PAGE, headers={"Content-Type": "text/html"})
            raise web.HTTPNotFound()
        finally:
            self.log.append((request.path, start, time.monotonic()))


@pytest.fixture
def host() -> Iterator[BusyHost]:
    server = BusyHost(hold=0.3)
    server.start()
    yield server
    server.stop()


def most_at_once(log: list[tuple[str, float, float]]) -> int:
    events = sorted([(s, 1) for _, s, _ in log] + [(e, -1) for _, _, e in log])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


async def test_polls_and_two_article_fetchers_keep_the_hosts_limits_together(
    settings: Settings, host: BusyHost,
) -> None:
    limit, gap = 2, 0.25
    async with make_rig(settings, per_host_concurrency=limit, host_min_delay=gap, shutdown_grace=5.0) as rig:
        feeds = [host.url(f"/feed/f{i}.xml") for i in range(10)]
        for url in feeds:
            await rig.add(url)
        fetchers: list[tuple[aiohttp.ClientSession, aioredis.Redis, ArticleFetcher]] = []
        for _ in range(2):  # two "worker processes": nothing in common but Redis
            session, redis = new_session(rig.settings), aioredis.Redis.from_url(rig.settings.redis_url)
            fetchers.append((session, redis, ArticleFetcher(session, redis, rig.keys, rig.settings)))
        try:
            poll = asyncio.create_task(run_poller(
                rig, lambda: sum(p.startswith("/feed/") for p, _, _ in host.log) >= len(feeds), timeout=30))
            await asyncio.sleep(0.4)  # polls under way, outside Redis, when the host turns shared
            outcomes = await asyncio.wait_for(asyncio.gather(*(
                fetcher.page(host.url(f"/news/p{n}-{i}")) for n, (_, _, fetcher) in enumerate(fetchers)
                for i in range(4))), 60)
            await poll
        finally:
            for session, redis, _ in fetchers:
                await session.close()
                await redis.aclose()
        assert [o.status for o in outcomes] == ["ok"] * 8
        assert await rig.redis.exists(rig.keys.host_slots("127.0.0.1")) == 0  # every slot given back
    paths = [p for p, _, _ in host.log]
    assert sum(p.startswith("/feed/") for p in paths) == len(feeds)
    assert sum(p.startswith("/news/") for p in paths) == 8
    assert most_at_once(host.log) <= limit, host.log
    starts = sorted(s for _, s, _ in host.log)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= gap - 0.03, gaps  # loopback: a request arrives ~ms after it starts


async def test_a_poll_under_way_when_its_host_turns_shared_is_counted_in_redis(
    settings: Settings, host: BusyHost,
) -> None:
    """A slow poll (2.5 s, longer than the announcement's 2 s) started outside Redis holds
    the host's only slot: the article fetch announced meanwhile waits for it to end."""
    async with make_rig(settings, per_host_concurrency=1, host_min_delay=0.0, shutdown_grace=5.0) as rig:
        await rig.add(host.url("/feed/slow.xml"))
        session, redis = new_session(rig.settings), aioredis.Redis.from_url(rig.settings.redis_url)
        try:
            poll = asyncio.create_task(run_poller(rig, lambda: len(host.log) >= 1, timeout=30))
            for _ in range(100):  # bounded: until the poll is under way
                if rig.poller.gate.running:
                    break
                await asyncio.sleep(0.02)
            assert rig.poller.gate.running and not rig.poller.gate.is_shared("127.0.0.1")
            outcome = await ArticleFetcher(session, redis, rig.keys, rig.settings).page(host.url("/news/late"))
            await poll
        finally:
            await session.close()
            await redis.aclose()
    assert outcome.status == "ok"
    (first, _, poll_end), *later = sorted(host.log, key=lambda h: h[1])
    assert first == "/feed/slow.xml" and [p for p, _, _ in later] == ["/robots.txt", "/news/late"]
    assert all(start >= poll_end - 0.01 for _, start, _ in later), host.log  # the adopted poll first


async def test_a_poll_of_a_host_without_article_fetching_costs_no_redis_round_trip(
    settings: Settings, host: BusyHost,
) -> None:
    async with make_rig(settings, per_host_concurrency=2, host_min_delay=0.0) as rig:
        for i in range(3):
            await rig.add(host.url(f"/feed/quiet{i}.xml"))
        await run_poller(rig, lambda: len(host.log) >= 3, timeout=20)
        # No slot was ever taken for the host: its pacing hash (kept a while after any
        # slot) was never written.
        assert await rig.redis.exists(rig.keys.host_pace("127.0.0.1")) == 0
        assert len(host.log) == 3


async def test_a_view_too_old_to_trust_sends_every_poll_through_redis(settings: Settings) -> None:
    redis = aioredis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.namespace)
    try:
        slots = HostSlots(redis, keys, per_host=2, min_delay=0.0, lease_seconds=10)
        gate = PollGate(slots)
        assert gate.is_shared("quiet.example")  # never read: every host counts as shared
        await gate.refresh()
        assert not gate.is_shared("quiet.example")
        async with slots.slot("busy.example", article=True):  # an article fetcher announces it
            assert ANNOUNCE_SECONDS > VIEW_VALID_SECONDS
        await gate.refresh()
        assert gate.is_shared("busy.example") and not gate.is_shared("quiet.example")
        gate.read_at -= VIEW_VALID_SECONDS + 0.1
        assert gate.is_shared("quiet.example")
    finally:
        await redis.aclose()


async def test_a_request_goes_ahead_when_redis_cannot_give_a_slot(caplog: pytest.LogCaptureFixture) -> None:
    """Redis down or failing over: a poll of a shared host is paced by its own process
    rather than failed, and handing the slot back does not raise (its lease ends it)."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    slots = HostSlots(dead, Keys("t"), per_host=1, min_delay=0.0, lease_seconds=5)
    ran = False
    try:
        async with slots.slot("news.example"):
            ran = True
        await slots.release("news.example", "some-token")
    finally:
        await dead.aclose()
    assert ran
    assert "shared host slots unavailable" in caplog.text
