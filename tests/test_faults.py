"""Faults on real parts (docs/reliability.md, fault table): a worker and `ingest run`
SIGKILLed mid-job, Redis gone mid-poll, PostgreSQL connections terminated under the
sink, a feed host down for a while, a shutdown cutting fetches off.

The other faults of the table live beside the code they exercise: a sink
SIGKILLed and Redis SIGKILLed/restarted with its AOF in test_crash.py, a
daemon killed and two daemons sharing feeds in test_daemons.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from ingest.embedded import RedisServer
from ingest.errors import StorageError
from ingest.keys import Keys
from ingest.poll.registry import load_feed
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from ingest.store.consume import SinkConsumer
from ingest.store.postgres import PostgresSink, split_schema
from tests.conftest import INGEST, env_for, free_port
from tests.farm import HOSTS, Farm, sample_feed
from tests.feedserver import FeedServer
from tests.helpers import stop_process, stream_records, wait_until
from tests.pgfixture import postgres_url  # noqa: F401 - fixture
from tests.records import fill_stream, record
from tests.test_crash import _count_is, stored_ids
from tests.test_daemons import _daemon, _register, _stop
from tests.test_polling import make_rig


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, so killing it disturbs no other test."""
    base = tmp_path / "redis"
    server = RedisServer(directory=base, socket_path=base / "redis.sock", port=free_port())
    server.start()
    yield server
    server.stop()


async def test_redis_down_while_polling_counts_poll_crashes_and_raises_nothing(
    settings: Settings, farm: Farm, private_redis: RedisServer,
) -> None:
    """#12 item 12: the error path no longer calls Redis unguarded."""
    s = dataclasses.replace(settings, redis_url=private_redis.url)
    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    async with make_rig(s) as rig:
        slow = await rig.add(farm.url("slow/1.0/a.xml"))
        await rig.redis.zadd(rig.keys.schedule, {slow: 0})
        assert slow in await rig.poller.scheduler.claim(time.time(), 60, 10)
        state = await load_feed(rig.redis, rig.keys, slow)
        task = asyncio.create_task(rig.poller._poll_one(slow, state))
        await asyncio.sleep(0.3)  # the fetch is in flight
        private_redis.kill()
        await asyncio.wait_for(task, 30)  # returns: the failure was counted, not raised
        assert task.exception() is None
        assert rig.poller.uncounted_crashes == 1
        private_redis.start()  # AOF replayed: the feed is still registered
        await rig.redis.connection_pool.disconnect()
        await rig.pool.connection_pool.disconnect()
        fine = await rig.add(farm.url("feed/b.xml"))
        await rig.poll(fine)  # the next poll that reaches Redis writes the missed count
        assert await rig.stat("poll_crashes") == 1
        assert rig.poller.uncounted_crashes == 0
    loop.set_exception_handler(None)
    assert not [c for c in unretrieved if "never retrieved" in str(c.get("message"))]


async def _server_pids(sink: PostgresSink) -> list[int]:
    pool = sink._pool
    assert pool is not None
    pids = []
    for holder in pool._holders:  # the pool's live connections
        con = holder._con
        if con is not None and not con.is_closed():
            pids.append(con.get_server_pid())
    return pids


async def test_terminated_postgres_connections_are_counted_retried_storage_errors(
    settings: Settings, postgres_url: str,  # noqa: F811 - fixture
) -> None:
    """#12 item 13: pg_terminate_backend under the sink: every outcome is a StorageError
    (counted in storage_errors) or a success, and every record is stored exactly once."""
    keys = Keys(settings.namespace)
    client = aioredis.Redis.from_url(settings.redis_url)
    sink = PostgresSink.from_url(postgres_url)
    consumer = SinkConsumer(client, keys, sink, group=keys.storage_group, consumer="pg",
                            batch_size=20, block_ms=50, claim_idle_ms=60_000)
    dsn, schema = split_schema(postgres_url)
    admin = await asyncpg.connect(dsn)
    try:
        await sink.open()
        await consumer.ensure_group()
        await fill_stream(client, keys, [record(i) for i in range(20)])
        assert await consumer.step(50) == 20
        outages = 0
        for round_ in range(1, 4):  # bounded: three terminations
            for pid in await _server_pids(sink):
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await fill_stream(client, keys, [record(i) for i in range(20 * round_, 20 * round_ + 20)])
            for _ in range(20):  # bounded retries, as the group loop would make
                try:
                    await consumer.step(50)
                except StorageError:
                    outages += 1
                    continue
                if await consumer.reader.redis.xpending(keys.items_stream, keys.storage_group) == {
                        "pending": 0, "min": None, "max": None, "consumers": []}:
                    break
        stats = await client.hgetall(keys.stats)
        assert int(stats.get(b"storage_errors", 0)) == outages == consumer.storage_errors
        rows = await admin.fetch(f'SELECT id FROM "{schema}".items')
        ids = [r[0] for r in rows]
        assert len(ids) == 80 and len(set(ids)) == 80
    finally:
        await admin.close()
        await sink.close()
        await client.aclose()


async def test_shutdown_refetches_exactly_the_fetches_it_cancelled(settings: Settings, farm: Farm) -> None:
    """#12 item 14, as documented in docs/guarantees.md: a fetch still running when
    shutdown_grace ends is cancelled and its lease released, so the next daemon fetches
    that feed again at once (the publisher saw two requests); a fetch that finished
    within the grace is not fetched again before its interval."""
    async with make_rig(settings, shutdown_grace=0.5) as first, make_rig(settings) as second:
        slow = await first.add(farm.url("slow/4/s.xml"))
        quick = await first.add(farm.url("slow/0.3/q.xml"))
        stop = asyncio.Event()
        task = asyncio.create_task(first.poller.run(stop))
        for _ in range(200):  # bounded: until the quick fetch is done (the slow one is not)
            if farm.hits("q.xml"):
                break
            await asyncio.sleep(0.02)
        assert not farm.hits("s.xml")  # the farm logs a request when it has answered
        stop.set()
        await asyncio.wait_for(task, 10)
        assert len(farm.hits("q.xml")) == 1
        stop2 = asyncio.Event()
        task2 = asyncio.create_task(second.poller.run(stop2))
        for _ in range(600):  # bounded (12 s): until the second daemon fetched the slow feed
            if len(farm.hits("s.xml")) == 2 and await second.redis.hget(second.keys.feed(slow), "lease") is None:
                break
            await asyncio.sleep(0.02)
        stop2.set()
        await asyncio.wait_for(task2, 15)
        assert len(farm.hits("s.xml")) == 2  # cancelled once, fetched again at once
        assert len(farm.hits("q.xml")) == 1  # finished within the grace: not again
        assert quick != slow


def _start(settings: Settings, log: Path, command: str) -> subprocess.Popen[bytes]:
    env = {**env_for(settings), "INGEST_LOG_LEVEL": "INFO", "INGEST_JOB_TIMEOUT": "3",
           "INGEST_JOB_RETRY_SECONDS": "0.5", "INGEST_SINK_CLAIM_IDLE_SECONDS": "1"}
    args = ["run"] if command == "run" else ["worker"]
    with log.open("ab") as out:
        return subprocess.Popen([*INGEST, *args], env=env, stdout=out, stderr=out, start_new_session=True)


def _feed_of(n: int, prefix: str) -> bytes:
    items = "".join(f"<item><guid>{prefix}{i}</guid><title>Story {prefix}{i}</title>"
                    f"<description>Text {prefix}{i}.</description></item>" for i in range(n))
    return f'<rss version="2.0"><channel><title>{prefix}</title>{items}</channel></rss>'.encode()


@pytest.mark.parametrize("command", ["worker", "run"])
async def test_a_process_killed_mid_job_loses_nothing_and_publishes_nothing_twice(
    settings: Settings, feed_server: FeedServer, tmp_path: Path, command: str,
) -> None:
    """SIGKILL `ingest worker` / `ingest run` while its jobs are fetching slow feeds, start
    it again: every item reaches the stream exactly once (and storage, for `run`). The
    recovery time is arq's in-progress marker (job_timeout + 10 s; job_timeout is 3 s
    here); issue-9a shortens it."""
    keys = Keys(settings.namespace)
    feeds, per_feed = 6, 10
    urls = [feed_server.serve(f"kill-{command}-{n}.xml", _feed_of(per_feed, f"k{n}-"), delays=[2.0])
            for n in range(feeds)]
    client = aioredis.Redis.from_url(settings.redis_url)
    log = tmp_path / "service.log"
    proc = _start(settings, log, command)
    try:
        pool = await connect_arq(settings)
        for url in urls:
            assert await pool.enqueue_job("fetch_once", url) is not None
        await pool.aclose()
        for _ in range(300):  # bounded: until jobs are running
            if await client.keys("arq:in-progress:*"):
                break
            await asyncio.sleep(0.05)
        assert await client.keys("arq:in-progress:*"), log.read_text()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed_at = time.monotonic()
        proc = _start(settings, log, command)
        total = feeds * per_feed
        for _ in range(1200):  # bounded: 60 s
            if await client.xlen(keys.items_stream) >= total:
                break
            await asyncio.sleep(0.05)
        recovery = time.monotonic() - killed_at
        print(f"{command} SIGKILLed: every item on the stream {recovery:.1f} s after the kill")
        records = await stream_records(client, keys)
        assert len(records) == total, log.read_text()[-3000:]
        assert len({(r["id"], r["version"]) for r in records}) == total
        if command == "run":
            for _ in range(600):  # bounded: 30 s
                if await _count_is(settings.storage_url, total):
                    break
                await asyncio.sleep(0.05)
            ids = await stored_ids(settings.storage_url)
            assert len(ids) == total and len(set(ids)) == total
    finally:
        stop_process(proc, 30)
        await client.aclose()


async def test_a_feed_host_down_for_a_while_is_fetched_when_it_is_back(
    settings: Settings, tmp_path: Path,
) -> None:
    """The publisher's host refuses connections for a while (20 s in the field test,
    3 s here): the feed backs off, is not disabled, and is fetched once it is back."""
    port = free_port()

    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=sample_feed("back"), content_type="application/rss+xml")

    url = f"http://127.0.0.1:{port}/feed.xml"
    async with make_rig(settings, min_interval=1, max_backoff=1) as rig:
        feed_id = await rig.add(url)
        down = await rig.poll(feed_id)  # nothing listens: connection refused
        assert not down.disabled_reason and down.consecutive_errors >= 1, down
        await asyncio.sleep(3)  # the host stays down a while (20 s in the field test)
        down = await rig.poll(feed_id)
        assert not down.disabled_reason, down
        app = web.Application()
        app.router.add_get("/feed.xml", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            up = await rig.poll(feed_id)
            assert up.last_status == "200" and not up.disabled_reason, up
            assert await rig.queued() == 1  # the body went to the workers
        finally:
            await runner.cleanup()


def test_two_daemons_each_restarted_fetch_every_feed_once(
    settings: Settings, farm: Farm, tmp_path: Path,
) -> None:
    """A and B poll one set of feeds (interval 600 s); A is restarted, then B. Every feed is
    fetched, and none twice: fetches finish within shutdown_grace, so no lease is released
    with its fetch cut off (docs/guarantees.md)."""
    urls = [farm.url(f"slow/0.3/restart{i}.xml", host=HOSTS[i % 3]) for i in range(24)]
    _register(settings, urls)
    extra = {"INGEST_POLL_BATCH": "2", "INGEST_MIN_INTERVAL": "1"}
    a = _daemon(settings, tmp_path, "A", **extra)
    b = _daemon(settings, tmp_path, "B", **extra)
    fetched = lambda: len({h.path for h in farm.hits("/slow/0.3/restart")})  # noqa: E731
    try:
        assert wait_until(lambda: fetched() >= 6, 60), (tmp_path / "A.log").read_text()[-2000:]
        _stop(a)
        a = _daemon(settings, tmp_path, "A", **extra)
        assert wait_until(lambda: fetched() >= 12, 60)
        _stop(b)
        b = _daemon(settings, tmp_path, "B", **extra)
        assert wait_until(lambda: fetched() == 24, 60), (tmp_path / "B.log").read_text()[-2000:]
        time.sleep(2)  # a second fetch, if any, would show up now
    finally:
        _stop(a, b)
    paths = sorted(h.path for h in farm.hits("/slow/0.3/restart"))
    assert paths == sorted(f"/slow/0.3/restart{i}.xml" for i in range(24))
