"""Faults on real parts (docs/reliability.md, fault table): Redis gone mid-poll,
PostgreSQL connections terminated under the sink, a feed host down for a while.

The other faults of the table live beside the code they exercise: a sink
SIGKILLed and Redis SIGKILLed/restarted with its AOF in test_crash.py, a
daemon killed and two daemons sharing feeds in test_daemons.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from ingest.embedded import RedisServer
from ingest.errors import StorageError
from ingest.keys import Keys
from ingest.poll.registry import load_feed
from ingest.settings import Settings
from ingest.store.consume import SinkConsumer
from ingest.store.postgres import PostgresSink, split_schema
from tests.conftest import free_port
from tests.farm import Farm
from tests.pgfixture import postgres_url  # noqa: F401 - fixture
from tests.records import fill_stream, record
from tests.test_polling import make_rig


@pytest.fixture
def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer] | Any:
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
