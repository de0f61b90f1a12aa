"""The service on a real Redis Cluster (#13): three masters, three replicas, loopback.

The cluster starts once for this module (tests/rediscluster.py); arq's queue is
the suite's single private Redis (`queue_redis_url`), as arq cannot use a
cluster. Skipped with the reason where no Redis 7 binaries are found, a
failure under TEST_REQUIRE_REDIS_CLUSTER=1 (.ci/run).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from ingest.deliver.streamcodec import decode_item
from ingest.deliver.subscribe import ItemFilter, live, replay
from ingest.embedded import RedisServer
from ingest.keys import Keys
from ingest.poll.registry import add_feeds
from ingest.redis_conn import connect, connect_arq
from ingest.settings import Settings
from tests.conftest import INGEST, env_for, running_worker
from tests.farm import Farm, sample_feed
from tests.feedserver import FeedServer
from tests.helpers import stop_process, stored_rows
from tests.rediscluster import LocalCluster, unavailable

PATHS = [
    "data/seed-yonhap.xml",
    "data/clusters/edited-headline.xml",
    "data/clusters/paragraph-added.xml",
    "data/clusters/same-topic-other-stories.xml",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    why = unavailable()
    if why:
        if os.environ.get("TEST_REQUIRE_REDIS_CLUSTER") == "1":
            pytest.fail(f"{why} (TEST_REQUIRE_REDIS_CLUSTER=1: the Redis Cluster tests must run)")
        pytest.skip(why)
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture
def cluster_settings(cluster: LocalCluster, settings: Settings, redis_server: RedisServer) -> Settings:
    """The suite's settings with the data on the cluster (emptied) and arq's queue on the
    suite's single Redis."""
    cluster.wait_healthy(30)
    cluster.flush()
    return dataclasses.replace(
        settings, redis_url=f"redis://127.0.0.1:{cluster.alive()[0]}/0", redis_cluster=True,
        queue_redis_url=settings.redis_url, job_retry_seconds=0.3, job_max_tries=30,
    )


@pytest.fixture
async def data(cluster_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = await connect(cluster_settings)
    yield client
    await client.aclose()


async def _entries(client: aioredis.Redis, keys: Keys) -> list[dict[str, Any]]:
    rows = await client.xrange(keys.items_stream, "-", "+")
    return [orjson.loads(decode_item(fields[b"item"])) for _, fields in rows]


def test_keys_one_script_touches_share_a_slot() -> None:
    """Pure: the hash tags put a feed's keys, the stream's and the schedule's together."""
    from redis.crc import key_slot

    keys = Keys("ingest", cluster=True)
    feed = "140166970a7736d5"
    assert len({key_slot(k.encode()) for k in (keys.feed(feed), keys.item_states(feed), keys.outbox(feed))}) == 1
    assert len({key_slot(k.encode()) for k in (keys.items_stream, keys.retry_stream("storage"),
                                               keys.delivery_positions)}) == 1
    assert len({key_slot(k.encode()) for k in (keys.stats, keys.items_minute(29_000_000))}) == 1
    assert key_slot(keys.feed(feed).encode()) != key_slot(keys.feed("0d5b1e1a3c9f7e21").encode())
    single = Keys("ingest")  # one Redis: the names of before #13
    assert (single.feed(feed), single.items_stream, single.schedule) == \
        (f"ingest:feed:{feed}", "ingest:items", "ingest:schedule")


async def test_ingest_run_on_a_cluster_end_to_end(
    cluster_settings: Settings, data: aioredis.Redis, farm: Farm
) -> None:
    """`ingest run` against the cluster: feeds polled, items once on the stream, stored by
    the sink's consumer group, replayable from the start, and live on sharded Pub/Sub."""
    keys = Keys.for_settings(cluster_settings)
    names = [f"c{i}.xml" for i in range(12)]
    for name in names:
        farm.feeds[name] = sample_feed(name.removesuffix(".xml"), items=5)
    await add_feeds(data, keys, [(farm.url(f"feed/{n}"), "", 0, ("news",)) for n in names])
    received: list[bytes] = []
    subscribed = asyncio.Event()
    listener = asyncio.create_task(live(data, [keys.items_channel], ItemFilter(),
                                        lambda _, raw: received.append(raw), subscribed.set))
    await asyncio.wait_for(subscribed.wait(), 10)
    proc = _run_service(cluster_settings)
    try:
        records = await _wait_for(data, keys, 60, 40)
    finally:
        code = stop_process(proc, 20)
    assert code == 0, _service_log(cluster_settings)[-3000:]
    assert len(records) == 60
    assert len({(r["id"], r["version"]) for r in records}) == 60
    assert {r["feed_url"] for r in records} == {farm.url(f"feed/{n}") for n in names}
    assert len(stored_rows(cluster_settings)) == 60  # the storage group read them all
    replayed: list[str] = []
    last = await replay(data, keys, "0", ItemFilter(), lambda eid, _: replayed.append(eid or ""), follow=False)
    assert len(replayed) == 60 and last == replayed[-1]
    deadline = time.monotonic() + 10  # published after the append, best effort: give it time
    while len(received) < 60 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    listener.cancel()
    assert len(received) == 60  # SPUBLISH on the shard of `<ns>:items`
    assert await data.hmget(keys.feed(records[0]["feed_id"]), ["last_status", "lease"]) == [b"200", None]
    assert await data.xlen(keys.items_stream) == 60
    assert not [k for k in await _all_keys(data, f"{keys.ns}:outbox:*")]  # every outbox emptied


async def test_copies_across_feeds_share_a_cluster(
    cluster_settings: Settings, data: aioredis.Redis, feed_server: FeedServer
) -> None:
    """The near-duplicate index spread over the cluster's nodes still finds the copies."""
    async with running_worker(cluster_settings):
        pool = await connect_arq(cluster_settings)
        try:
            for path in PATHS:
                job = await pool.enqueue_job("fetch_once", feed_server.url(path))
                assert job is not None
                result = await job.result(timeout=30)
                assert "error" not in result, result
        finally:
            await pool.aclose()
    records = await _entries(data, Keys.for_settings(cluster_settings))
    assert len(records) == 3 + 4
    copies, others = records[:3], records[3:]
    assert len({r["feed_id"] for r in copies}) == 3
    assert len({r["cluster_id"] for r in copies}) == 1
    assert all(r["cluster_id"] == r["id"] for r in others)


async def test_consumer_group_on_the_cluster_reads_each_entry_once(
    cluster_settings: Settings, data: aioredis.Redis, feed_server: FeedServer
) -> None:
    """A consumer group and a replay from an id, on the stream's shard."""
    from ingest.deliver.subscribe import consume_group

    keys = Keys.for_settings(cluster_settings)
    async with running_worker(cluster_settings):
        pool = await connect_arq(cluster_settings)
        try:
            job = await pool.enqueue_job("fetch_once", feed_server.url(PATHS[3]))
            assert job is not None
            await job.result(timeout=30)
        finally:
            await pool.aclose()
    got: list[str] = []
    read = await consume_group(data, keys, "readers", "one", ItemFilter(), lambda eid, _: got.append(eid or ""),
                               start="0", follow=False, block_ms=100)
    assert read == 4 and len(set(got)) == 4
    again = await consume_group(data, keys, "readers", "two", ItemFilter(), lambda eid, _: got.append(eid or ""),
                                start="0", follow=False, block_ms=100)
    assert again == 0  # acknowledged: nothing for the group twice
    after: list[str] = []
    await replay(data, keys, got[1], ItemFilter(), lambda eid, _: after.append(eid or ""), follow=False)
    assert after == got[2:]


async def test_the_stream_trimmer_keeps_a_durable_groups_entries_on_the_cluster(
    cluster_settings: Settings, data: aioredis.Redis
) -> None:
    """#20 on the stream's shard: the group reads, the cut, the lock and backpressure."""
    from ingest.deliver.trim import Trimmer, durable_group_names, read_busy
    from tests.records import record

    s = dataclasses.replace(cluster_settings, stream_maxlen=100, stream_max_entries=700, stream_max_bytes=0)
    keys = Keys.for_settings(s)
    await data.xgroup_create(keys.items_stream, "storage", id="0", mkstream=True)
    trimmer = Trimmer(data, keys, s, durable_group_names(s, keys, ()), "cluster-test")

    async def add(start: int, stop: int) -> None:
        for first in range(start, stop, 100):
            for i in range(first, first + 100):
                await data.xadd(keys.items_stream, {"item": orjson.dumps(record(i))})
            await trimmer.tick()

    await trimmer.tick()
    await add(0, 700)
    assert await data.xlen(keys.items_stream) == 700  # "storage" has read nothing yet
    ids = [eid for eid, _ in await data.xrange(keys.items_stream)]
    await data.xreadgroup("storage", "c1", {keys.items_stream: ">"}, count=300)
    await data.xack(keys.items_stream, "storage", *ids[:250])  # 50 stay pending
    result = await trimmer.tick()
    first = (await data.xrange(keys.items_stream, count=1))[0][0]
    assert 200 <= ids.index(first) <= 250 and result.trimmed == ids.index(first)
    assert result.busy is None and await read_busy(data, keys) is None
    await add(700, 900)  # ~650 of a 700 cap: backpressure
    assert "stream_max_entries" in str(await read_busy(data, keys))


async def test_a_master_killed_mid_ingest_loses_nothing_and_repeats_nothing(
    cluster: LocalCluster, cluster_settings: Settings, data: aioredis.Redis, farm: Farm
) -> None:
    """SIGKILL the master of the stream's slot while `ingest run` delivers; its replica
    takes over: every item reaches the stream exactly once."""
    keys = Keys.for_settings(cluster_settings)
    names = [f"k{i}.xml" for i in range(30)]
    for name in names:
        farm.feeds[name] = sample_feed(name.removesuffix(".xml"), items=4)
    # Slow answers spread the ingest over a few seconds, so the kill lands in the middle.
    await add_feeds(data, keys, [(farm.url(f"slow/0.4/{n}"), "", 0, ()) for n in names])
    victim = cluster.master_of(keys.items_stream)
    proc = _run_service(cluster_settings)
    try:
        deadline = time.monotonic() + 30
        while await _length(data, keys) < 10:
            assert time.monotonic() < deadline, "nothing delivered before the kill"
            await asyncio.sleep(0.05)
        cluster.kill(victim)
        await asyncio.to_thread(cluster.wait_healthy, 30, False)
        fresh = await connect(dataclasses.replace(
            cluster_settings, redis_url=f"redis://127.0.0.1:{cluster.alive()[0]}/0"))
        try:
            records = await _wait_for(fresh, keys, 120, 40)
        finally:
            await fresh.aclose()
    finally:
        code = stop_process(proc, 20)
    log = _service_log(cluster_settings)
    assert code == 0, (code, log[-3000:])
    assert len(records) == 120, log[-5000:]
    assert cluster.master_of(keys.items_stream) != victim  # a replica was promoted
    twice = [k for k, n in Counter((r["id"], r["version"]) for r in records).items() if n > 1]
    assert not twice
    assert len(records) == 120
    assert {r["guid"] for r in records} == {f"{n.removesuffix('.xml')}-{i}" for n in names for i in range(4)}


def _run_service(settings: Settings) -> subprocess.Popen[bytes]:
    """`ingest run` on the cluster; its log goes to a file (a pipe nobody drains would
    fill up with the failover's warnings and stop the service)."""
    env = env_for(settings)
    env.update(INGEST_REDIS_CLUSTER="1", INGEST_QUEUE_REDIS_URL=settings.queue_redis_url,
               INGEST_WORKERS="1", INGEST_JOB_RETRY_SECONDS=str(settings.job_retry_seconds),
               INGEST_JOB_MAX_TRIES=str(settings.job_max_tries), INGEST_PER_HOST_CONCURRENCY="4")
    log = open(Path(settings.data_dir).parent / "service.log", "wb")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen([*INGEST, "run"], env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=log, cwd=Path(__file__).resolve().parents[1], start_new_session=True)
    finally:
        log.close()


def _service_log(settings: Settings) -> str:
    return (Path(settings.data_dir).parent / "service.log").read_text(errors="replace")


async def _length(client: aioredis.Redis, keys: Keys) -> int:
    try:
        return int(await client.xlen(keys.items_stream))
    except Exception:  # noqa: BLE001 - a failover in progress
        return 0


async def _wait_for(client: aioredis.Redis, keys: Keys, want: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while await _length(client, keys) < want and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # anything delivered twice would show up by now
    return await _entries(client, keys)


async def _all_keys(client: aioredis.Redis, pattern: str) -> list[bytes]:
    return [k async for k in client.scan_iter(match=pattern)]
