"""Crashes on real parts: a sink SIGKILLed mid-batch (SQLite, PostgreSQL), and the Redis
server SIGKILLed and restarted (append-only file) while `ingest run` ingests."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from ingest.embedded import RedisServer
from ingest.keys import Keys
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from ingest.store.postgres import split_schema
from tests.conftest import INGEST, env_for
from tests.feedserver import FeedServer
from tests.helpers import stop_process, stream_records
from tests.records import fill_stream, record
from tests.test_delivery import _feed


async def stored_ids(storage_url: str) -> list[str]:
    """Every id row in storage (a list: a duplicate would show)."""
    if storage_url.startswith("sqlite"):
        path = Path(storage_url.removeprefix("sqlite://"))
        if not path.exists():
            return []
        with sqlite3.connect(path) as conn:
            try:
                return [row[0] for row in conn.execute("SELECT id FROM items")]
            except sqlite3.OperationalError:  # not created yet
                return []
    dsn, schema = split_schema(storage_url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        return [row[0] for row in await conn.fetch("SELECT id FROM items")]
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()


def _service(settings: Settings, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    full = {**env_for(settings), "INGEST_LOG_LEVEL": "INFO", **env}
    with log.open("ab") as out:
        return subprocess.Popen([*INGEST, "run", *args], env=full, stdout=out, stderr=out,
                                start_new_session=True)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


async def _wait(what: str, check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def test_a_sink_killed_mid_batch_and_restarted_stores_every_item_exactly_once(
    settings: Settings, storage_url: str, client: aioredis.Redis, tmp_path: Path
) -> None:
    keys = Keys(settings.namespace)
    records = [record(i) for i in range(3000)]
    await fill_stream(client, keys, records)
    settings = dataclasses.replace(settings, storage_url=storage_url)
    env = {"INGEST_SINK_BATCH_SIZE": "10", "INGEST_SINK_CLAIM_IDLE_SECONDS": "1"}
    log = tmp_path / "service.log"

    killed_holding = 0
    for _ in range(5):  # bounded: until a kill lands while a batch is read but not acknowledged
        proc = _service(settings, log, "--no-workers", **env)
        try:
            before = len(await stored_ids(storage_url))
            await _wait("the sink to store something",
                        lambda b=before: _more(storage_url, b), 60)  # type: ignore[misc]
        finally:
            _kill(proc)
        killed_holding = (await client.xpending(keys.items_stream, "storage"))["pending"]
        if killed_holding:
            break
    assert killed_holding > 0, "never killed mid-batch"
    assert len(await stored_ids(storage_url)) < 3000

    proc = _service(settings, log, "--no-workers", **env)  # a new consumer: claims the dead one's
    try:
        await _wait("every item stored",
                    lambda: _count_is(storage_url, 3000), 60)
        await _wait("every entry acknowledged", lambda: _no_pending(client, keys), 30)
    finally:
        _kill(proc)
    ids = await stored_ids(storage_url)
    assert len(ids) == 3000 and sorted(ids) == sorted(r["id"] for r in records), log.read_text()[-2000:]


async def _more(storage_url: str, than: int) -> bool:
    return len(await stored_ids(storage_url)) > than


async def _count_is(storage_url: str, n: int) -> bool:
    return len(await stored_ids(storage_url)) >= n


async def _no_pending(client: aioredis.Redis, keys: Keys) -> bool:
    return (await client.xpending(keys.items_stream, "storage"))["pending"] == 0


async def test_redis_killed_and_restarted_during_an_ingest_loses_nothing_acknowledged(
    settings: Settings, redis_server: RedisServer, feed_server: FeedServer, client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    keys = Keys(settings.namespace)
    feeds, per_feed = 12, 40
    urls = [feed_server.serve(f"crash{n}.xml", _feed(per_feed, f"c{n}-"),
                              delays=[1.5] if n % 2 else []) for n in range(feeds)]
    log = tmp_path / "service.log"
    proc = _service(settings, log, INGEST_JOB_TIMEOUT="3", INGEST_JOB_RETRY_SECONDS="0.5",
                    INGEST_SINK_BATCH_SIZE="20", INGEST_SINK_CLAIM_IDLE_SECONDS="1",
                    INGEST_WORKER_POLL_DELAY="0.05")
    try:
        pool = await connect_arq(settings)
        for url in urls:  # acknowledged by Redis: these jobs must all complete
            assert await pool.enqueue_job("fetch_once", url) is not None
        await pool.aclose()
        await _wait("the first items", lambda: client.xlen(keys.items_stream), 30)
        seen = [eid for eid, _ in await client.xrange(keys.items_stream)]
        redis_server.kill()  # SIGKILL mid-ingest: slow feeds are still being fetched
        await asyncio.sleep(1.0)
        redis_server.start()  # same port and directory: replays the append-only file
        await client.connection_pool.disconnect()

        after = {eid for eid, _ in await client.xrange(keys.items_stream)}
        assert set(seen) <= after  # every entry Redis had acknowledged survived
        total = feeds * per_feed
        await _wait("every item stored", lambda: _count_is(settings.storage_url, total), 90)
        await _wait("every entry acknowledged", lambda: _no_pending(client, keys), 30)
        assert proc.poll() is None, "the service died instead of carrying on"
    finally:
        stop_process(proc, 30)
        if not redis_server.running:
            redis_server.start()
    records = await stream_records(client, keys)
    assert len(records) == total, log.read_text()[-3000:]
    assert len({(r["id"], r["version"]) for r in records}) == total  # nothing twice
    ids = await stored_ids(settings.storage_url)
    assert len(ids) == total and len(set(ids)) == total
    assert proc.returncode == 0, log.read_text()[-3000:]
