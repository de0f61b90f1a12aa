"""WebSub end to end on loopback: a test hub, the real web app, the poller, an arq worker.

Discovery at a poll, subscription with intent verification against our
callback, signed distribution to the stream, a replayed push (once on the
stream), the hostile pushes (unsigned, wrongly signed, oversized, a
verification for a topic never asked for), lease renewal, unsubscribe on
removal, and a hub on a refused address.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.poll.fetch import new_session
from ingest.poll.manage import disable_feed
from ingest.poll.poller import Poller
from ingest.poll.registry import add_feed, load_feed, remove_feed
from ingest.poll.scheduler import Scheduler, new_token
from ingest.push.renew import reconcile
from ingest.push.signature import sign
from ingest.push.state import FAILED, SUBSCRIBED, load_subscriptions
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from ingest.web.server import start_server
from tests.conftest import INGEST, env_for, free_port, running_worker
from tests.feedserver import FeedServer
from tests.helpers import feed_id_of, run_cli, stream_records
from tests.websubhub import WebSubHub, article_page

pytestmark = pytest.mark.timeout(120)


def atom(hub: str, self_url: str, entries: range, page: str = "https://pub.example/") -> bytes:
    items = "".join(
        f"<entry><id>urn:push:{n}</id><title>Story {n}</title><link href='{page}{n}'/>"
        f"<updated>2026-11-30T10:{n % 60:02d}:00Z</updated><content type='html'>&lt;p&gt;Body of story {n}."
        f"&lt;/p&gt;</content></entry>" for n in entries)
    return (f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<title>Pushed</title><id>urn:pushed</id><updated>2026-11-30T10:00:00Z</updated>"
            f"<link rel='hub' href='{hub}'/><link rel='self' href='{self_url}'/>{items}</feed>").encode()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """The first truthy value of `check`, polled for at most `timeout` seconds (bounded)."""
    deadline = time.monotonic() + timeout
    for _ in range(10_000):
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)
    return None


@dataclasses.dataclass
class World:
    settings: Settings
    redis: aioredis.Redis
    keys: Keys
    session: aiohttp.ClientSession
    http: aiohttp.ClientSession
    hub: WebSubHub
    feeds: FeedServer

    async def stats(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.keys.stats)
        return {k.decode(): int(float(v)) for k, v in raw.items()}

    async def subs(self) -> list[Any]:
        return await load_subscriptions(self.redis, self.keys)

    async def titles(self) -> list[str]:
        return sorted(r["title"] for r in await stream_records(self.redis, self.keys))


@contextlib.asynccontextmanager
async def open_world(settings: Settings, feed_server: FeedServer) -> AsyncIterator[World]:
    port = free_port()
    settings = dataclasses.replace(settings, listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}/",
                                   max_body_bytes=200_000, push_lease_seconds=3600)
    hub = WebSubHub()
    await hub.start()
    started = await start_server(settings)
    assert started is not None
    runner, _ = started
    redis = aioredis.Redis.from_url(settings.redis_url)
    session = new_session(settings)
    http = aiohttp.ClientSession()
    try:
        async with running_worker(settings):
            yield World(settings, redis, Keys(settings.namespace), session, http, hub, feed_server)
    finally:
        await http.close()
        await session.close()
        await redis.aclose()
        await runner.cleanup()
        await hub.close()


@pytest.fixture
async def world(settings: Settings, feed_server: FeedServer) -> AsyncIterator[World]:
    async with open_world(settings, feed_server) as opened:
        yield opened


@pytest.fixture
async def teaser_world(settings: Settings, feed_server: FeedServer) -> AsyncIterator[World]:
    """Full text as users have it (`auto`, a second between two requests to a host), and a
    poll that waits long for its pages (30 s): only a push's own deadline explains a push
    delivered sooner (#21). Deferred tries wait a minute: a page asked for during a test
    was asked at once."""
    teasers = dataclasses.replace(settings, full_text="auto", full_text_deadline=30.0, host_min_delay=1.0,
                                  job_retry_seconds=60.0)
    async with open_world(teasers, feed_server) as opened:
        yield opened


async def _poll_until_hub(world: World, feed_id: str) -> None:
    pool = await connect_arq(world.settings)
    poller = Poller(world.settings, world.redis, pool, world.session,
                    Scheduler(world.redis, world.keys, new_token()))
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))

    async def has_hub() -> bool:
        state = await load_feed(world.redis, world.keys, feed_id)
        return bool(state and state.hub)

    try:
        assert await eventually(has_hub), "the poll did not record the hub"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await pool.aclose()


async def _subscribed_feed(world: World, name: str, page: str = "https://pub.example/",
                           full_text: str = "") -> tuple[str, str]:
    """A feed announcing the test hub, polled once and subscribed: (feed_id, topic)."""
    topic = world.feeds.url(f"custom/{name}")
    world.feeds.serve(name, atom(world.hub.url, topic, range(1, 3), page), "application/atom+xml")
    feed_id, _ = await add_feed(world.redis, world.keys, topic, full_text=full_text)
    await _poll_until_hub(world, feed_id)
    state = await load_feed(world.redis, world.keys, feed_id)
    assert state is not None and (state.hub, state.self_url) == (world.hub.url, topic)
    actions = await reconcile(world.settings, world.redis, world.session)
    assert [a.kind for a in actions] == ["subscribe"]

    async def verified() -> bool:
        return bool(world.hub.live(topic)) and all(s.state == SUBSCRIBED for s in await world.subs())

    assert await eventually(verified), (world.hub.verifications, await world.subs())
    return feed_id, topic


async def test_subscribe_verify_push_replay_and_dedup(world: World) -> None:
    pubsub = world.redis.pubsub()
    await pubsub.subscribe(world.keys.events_channel)
    feed_id, topic = await _subscribed_feed(world, "push-a")
    request = world.hub.requests[0]
    assert request["hub.topic"] == topic and request["hub.lease_seconds"] == "3600"
    assert request["hub.callback"].startswith(f"{world.settings.public_url}push/")
    assert len(request["hub.callback"].rsplit("/", 1)[1]) >= 32 and len(request["hub.secret"]) == 64
    assert await eventually(lambda: _count(world, 2)), "the polled items did not arrive"

    # Stories 2 (already polled) and 3 (new) pushed: 3 appears, 2 stays once.
    body = atom(world.hub.url, topic, range(2, 4))
    assert await world.hub.publish(topic, body) == [202]
    assert await eventually(lambda: _count(world, 3))
    # The same push again (a replay): accepted, parsed, and delivered once.
    assert await world.hub.publish(topic, body, method="sha512") == [202]
    assert await eventually(lambda: _parsed(world, 3)), "the replayed push was not processed"
    assert await world.titles() == ["Story 1", "Story 2", "Story 3"]
    stats = await world.stats()
    assert stats["push_received"] == 2 and stats["push_to_stream_seconds_count"] == 1
    async with world.http.get(f"http://{world.settings.listen}/metrics") as r:
        metrics = await r.text()
    assert 'ingest_push_to_stream_seconds_count 1.0' in metrics
    assert 'ingest_events_total{name="push_received"} 2.0' in metrics

    state = await load_feed(world.redis, world.keys, feed_id)
    assert state is not None and state.last_push_at and state.push_expires_at > time.time() + 3000
    async with world.http.get(f"http://{world.settings.listen}/api/v1/feeds/{feed_id}") as r:
        row = await r.json()
    assert row["pushed"] is True and row["hub"] == world.hub.url and row["last_push_at"]
    assert row["push_lease_expires_at"]
    events = await _events(pubsub)
    assert any(e["event"] == "subscribed" and e["feed_id"] == feed_id for e in events)
    await pubsub.aclose()


async def _count(world: World, n: int) -> bool:
    return await world.redis.xlen(world.keys.items_stream) >= n


async def _parsed(world: World, n: int) -> bool:
    return (await world.stats()).get("parse_seconds_count", 0) >= n


async def _events(pubsub: Any, timeout: float = 1.0) -> list[dict[str, Any]]:
    out = []
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message:
            out.append(orjson.loads(message["data"]))
        elif time.monotonic() > deadline:
            break
    return out


async def test_hostile_pushes_are_refused_counted_and_never_parsed(world: World) -> None:
    _, topic = await _subscribed_feed(world, "push-b")
    assert await eventually(lambda: _parsed(world, 1))
    parsed_before = (await world.stats())["parse_seconds_count"]
    pubsub = world.redis.pubsub()
    await pubsub.subscribe(world.keys.events_channel)
    callback = world.hub.live(topic)[0].callback
    body = atom(world.hub.url, topic, range(50, 52))

    async def post(data: bytes, headers: dict[str, str]) -> int:
        async with world.http.post(callback, data=data, headers=headers) as r:
            return r.status

    assert await post(body, {}) == 403  # unsigned
    assert await post(body, {"X-Hub-Signature": sign(body, "not-the-secret")}) == 403
    assert await post(body, {"X-Hub-Signature": "md5=00"}) == 403
    big = body + b" " * 250_000
    assert await post(big, {"X-Hub-Signature": sign(big, world.hub.live(topic)[0].secret)}) == 413
    async with world.http.post(callback + "x", data=body) as r:  # a token never issued
        assert r.status == 410
    # A verification for a topic we never asked for, and for a mode not pending: 404, no challenge.
    for params in ({"hub.mode": "subscribe", "hub.topic": "https://evil.example/feed", "hub.challenge": "c"},
                   {"hub.mode": "unsubscribe", "hub.topic": topic, "hub.challenge": "c"},
                   {"hub.mode": "subscribe", "hub.topic": topic, "hub.challenge": "c"}):
        async with world.http.get(callback, params=params) as r:
            assert r.status == 404 and "c" != await r.text()
    stats = await world.stats()
    assert stats["push_refused:unsigned"] == 1 and stats["push_refused:bad_signature"] == 1
    assert stats["push_refused:unknown_algorithm"] == 1 and stats["push_refused:too_large"] == 1
    assert stats["push_refused:unknown"] == 1 and "push_received" not in stats
    await asyncio.sleep(0.5)
    assert (await world.stats())["parse_seconds_count"] == parsed_before  # nothing refused was parsed
    reasons = sorted(e["reason"] for e in await _events(pubsub) if e["event"] == "push_refused")
    assert reasons == ["bad_signature", "too_large", "unknown_algorithm", "unsigned"]
    await pubsub.aclose()


async def test_lease_expiry_is_renewed_and_removal_unsubscribes(world: World) -> None:
    world.hub.grant_lease = 120  # a short lease: renewal is due within its last minute
    feed_id, topic = await _subscribed_feed(world, "push-c")
    [sub] = await world.subs()
    assert sub.lease_expires - time.time() < 130
    # Nothing to do now; 70 s later the lease is within its renewal margin.
    assert await reconcile(world.settings, world.redis, world.session) == []
    actions = await reconcile(world.settings, world.redis, world.session, now=time.time() + 70)
    assert [a.kind for a in actions] == ["renew"]
    assert await eventually(lambda: _verified_count(world, 2))
    [renewed] = await world.subs()
    assert renewed.token == sub.token and renewed.state == SUBSCRIBED and not renewed.pending
    assert renewed.lease_expires > sub.lease_expires

    # Disabled: unsubscribed at the hub after the hub verifies the unsubscribe.
    pubsub = world.redis.pubsub()
    await pubsub.subscribe(world.keys.events_channel)
    await disable_feed(world.redis, world.keys, feed_id, "test")
    actions = await reconcile(world.settings, world.redis, world.session)
    assert [a.kind for a in actions] == ["unsubscribe"]

    async def gone() -> bool:
        return not await world.subs() and not world.hub.live(topic)

    assert await eventually(gone)
    assert world.hub.verifications[-1].mode == "unsubscribe" and world.hub.verifications[-1].confirmed
    assert any(e["event"] == "unsubscribed" for e in await _events(pubsub))
    await pubsub.aclose()
    await remove_feed(world.redis, world.keys, feed_id)
    assert await reconcile(world.settings, world.redis, world.session) == []


async def test_a_hub_that_stops_pushing_is_renewed_when_polls_find_news(world: World) -> None:
    feed_id, topic = await _subscribed_feed(world, "push-f")
    [sub] = await world.subs()
    # The subscription is old, the hub never pushed; now the publisher has a new story.
    await world.redis.hset(world.keys.push_subscription(sub.token), "requested_at", repr(time.time() - 3600))
    world.feeds.serve("push-f", atom(world.hub.url, topic, range(1, 4)), "application/atom+xml")
    await world.redis.zadd(world.keys.schedule, {feed_id: 0})  # due now
    pool = await connect_arq(world.settings)
    poller = Poller(world.settings, world.redis, pool, world.session, Scheduler(world.redis, world.keys, new_token()))
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))

    async def noted() -> bool:
        state = await load_feed(world.redis, world.keys, feed_id)
        return bool(state and state.polled_news_at)

    try:
        assert await eventually(noted), "the poll's news was not noted"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await pool.aclose()
    pubsub = world.redis.pubsub()
    await pubsub.subscribe(world.keys.events_channel)
    actions = await reconcile(world.settings, world.redis, world.session)
    assert [a.kind for a in actions] == ["stale"]
    assert any(e["event"] == "push_stale" for e in await _events(pubsub))
    await pubsub.aclose()
    assert await eventually(lambda: _verified_count(world, 2))
    assert await reconcile(world.settings, world.redis, world.session) == []  # renewed: quiet again


async def _verified_count(world: World, n: int) -> bool:
    return sum(v.confirmed for v in world.hub.verifications) >= n


async def test_a_hub_on_a_refused_address_is_never_contacted(world: World) -> None:
    topic = world.feeds.url("custom/push-d")
    feed_id, _ = await add_feed(world.redis, world.keys, topic)
    await world.redis.hset(world.keys.feed(feed_id), mapping={"hub": world.hub.url, "self_url": topic})
    strict = dataclasses.replace(world.settings, allow_networks="")  # loopback not opened
    strict_session = new_session(strict)
    try:
        actions = await reconcile(strict, world.redis, strict_session)
    finally:
        await strict_session.close()
    assert [a.kind for a in actions] == ["subscribe"]
    [sub] = await world.subs()
    assert sub.state == FAILED and "refused" in sub.last_error and "loopback" in sub.last_error
    assert sub.retry_at > time.time() + 30
    assert world.hub.requests == []
    assert (await world.stats())["push_subscribe_errors"] == 1
    # A hub whose name resolves to loopback is refused by the resolver too.
    named = dataclasses.replace(world.settings, allow_networks="")
    named_session = new_session(named)
    try:
        from ingest.push.hub import hub_request

        error = await hub_request(named_session, named, f"http://localhost:{world.hub.port}/hub",
                                  mode="subscribe", topic=topic, callback=sub.callback, secret="s")
    finally:
        await named_session.close()
    assert error is not None and "refused" in error and world.hub.requests == []


async def _first_version(world: World, title: str) -> dict[str, Any] | None:
    return next((r for r in await stream_records(world.redis, world.keys) if r["title"] == title), None)


async def _with_article(world: World, titles: set[str]) -> bool:
    records = await stream_records(world.redis, world.keys)
    return titles <= {r["title"] for r in records if r.get("content_source") == "article"}


async def test_a_pushed_teaser_goes_out_at_once_and_its_article_page_follows(teaser_world: World) -> None:
    """One push at a time on an otherwise idle worker, the article page held back: the item
    is on the stream with the feed's text (pending) before its page is answered, then the
    page's text follows as version 2 (#21). The bounds are generous: they catch a push that
    waits for its page, or a lost wake-up, not a slow machine."""
    world, hub = teaser_world, teaser_world.hub
    pages = hub.page_url("")
    for n in range(1, 5):
        hub.pages[str(n)] = article_page(n)
    _, topic = await _subscribed_feed(world, "push-t", pages)
    # A poll waits for its pages (full_text_deadline): the polled stories come with the article's text.
    assert await eventually(lambda: _with_article(world, {"Story 1", "Story 2"}), 30)

    hub.page_gate = asyncio.Event()  # pages are answered only once the pushed items are out
    for n in (3, 4):
        await asyncio.sleep(1.0)  # the worker idles between pushes
        assert await hub.publish(topic, atom(hub.url, topic, range(n, n + 1), pages)) == [202]
        record = await eventually(lambda n=n: _first_version(world, f"Story {n}"), 15)
        assert record is not None, f"pushed story {n} waited for its article page"
        assert (record["version"], record["content_source"], record["article_status"]) == (1, "feed", "pending")
    assert hub.page_hits.get("1") == hub.page_hits.get("2") == 1  # the polled pages, asked once

    async def asked() -> bool:  # the pushed items' first tries are queued at once, not deferred
        return {"3", "4"} <= set(hub.page_hits)

    assert await eventually(asked, 15), hub.page_hits
    hub.page_gate.set()
    assert await eventually(lambda: _with_article(world, {"Story 3", "Story 4"}), 30), hub.page_hits
    versions = {r["version"] for r in await stream_records(world.redis, world.keys) if r["title"] == "Story 3"}
    assert versions == {1, 2}  # the feed's text, then the article's: no duplicate, nothing lost
    assert hub.page_hits["3"] == hub.page_hits["4"] == 1


async def test_a_push_keeps_the_feeds_own_full_text_mode(teaser_world: World) -> None:
    """A feed added with full_text "off" (the setting says auto): neither its polled nor its
    pushed items ask for an article page."""
    world, hub = teaser_world, teaser_world.hub
    _, topic = await _subscribed_feed(world, "push-off", hub.page_url(""), full_text="off")
    assert await eventually(lambda: _count(world, 2))
    assert await hub.publish(topic, atom(hub.url, topic, range(3, 4), hub.page_url(""))) == [202]
    record = await eventually(lambda: _first_version(world, "Story 3"))
    assert record is not None and record["article_status"] is None and record["content_source"] == "feed"
    await asyncio.sleep(0.5)  # a follow-up, had one been queued, would have asked by now
    assert hub.page_hits == {}


async def test_ingest_add_records_the_hub_and_feeds_shows_it(settings: Settings, feed_server: FeedServer) -> None:
    url = feed_server.serve("push-e", atom("https://hub.example/hub", "https://pub.example/self", range(1, 2)),
                            "application/atom+xml")
    code, _, err = await run_cli(settings, "add", url)
    assert code == 0, err
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        state = await load_feed(redis, Keys(settings.namespace), feed_id_of(url))
    finally:
        await redis.aclose()
    assert state is not None and (state.hub, state.self_url) == ("https://hub.example/hub", "https://pub.example/self")
    code, out, _ = await run_cli(settings, "feeds")
    assert "[hub https://hub.example/hub, not pushed]" in out
    code, out, _ = await run_cli(settings, "feeds", "--json")
    row = orjson.loads(out.splitlines()[0])
    assert row["hub"] == "https://hub.example/hub" and row["pushed"] is False and row["last_push_at"] is None


async def test_ingest_run_subscribes_by_itself_and_delivers_pushes(settings: Settings, tmp_path: Any) -> None:
    """The wiring: `ingest run` with public_url finds the hub, subscribes, and a push reaches the stream."""
    hub = WebSubHub()
    await hub.start()
    topic = hub.feed_url("daemon")
    hub.documents["daemon"] = atom(hub.url, topic, range(1, 2))
    port = free_port()
    env = env_for(settings) | {"INGEST_LISTEN": f"127.0.0.1:{port}", "INGEST_PUBLIC_URL": f"http://127.0.0.1:{port}",
                               "INGEST_WORKERS": "1"}
    redis = aioredis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.namespace)
    proc = None
    try:
        code, _, err = await run_cli(settings, "add", topic)
        assert code == 0, err
        with (tmp_path / "run.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(*INGEST, "run", env=env, stdout=log, stderr=log)

        async def subscribed() -> bool:
            return bool(hub.live(topic))

        assert await eventually(subscribed, 60), (tmp_path / "run.log").read_text()[-2000:]
        assert await hub.publish(topic, atom(hub.url, topic, range(2, 3))) == [202]

        async def delivered() -> bool:
            titles = [r["title"] for r in await stream_records(redis, keys)]
            return "Story 2" in titles

        assert await eventually(delivered, 60), (tmp_path / "run.log").read_text()[-2000:]
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
        await redis.aclose()
        await hub.close()
