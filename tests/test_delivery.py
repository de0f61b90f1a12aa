"""Jobs are idempotent and retried only when it helps: concurrent runs, a worker killed
mid-job, transient Redis failures -> Retry, the last try -> dead letter -> `ingest dead retry`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from arq import Retry

from ingest.deliver.publish import Deliverer
from ingest.keys import Keys
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from tests.conftest import INGEST, env_for, free_port, running_worker
from tests.feedserver import FeedServer
from tests.helpers import run_cli, stream_records
from workers.context import WorkerContext, on_shutdown, on_startup
from workers.tasks import fetch_once, retry_delay


def _feed(n: int, prefix: str = "s") -> bytes:
    body = "".join(
        f"<item><guid>{prefix}{i}</guid><title>Story {prefix}{i}</title>"
        f"<link>http://ex.example/{prefix}{i}</link><pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate>"
        f"<description>Text of story {prefix}{i}.</description></item>"
        for i in range(n)
    )
    return f'<rss version="2.0"><channel><title>Feed {prefix}</title>{body}</channel></rss>'.encode()



@pytest.fixture
async def job_ctx(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """The ctx arq gives a task, built by our own on_startup."""
    pool = await connect_arq(settings)
    ctx: dict[str, Any] = {"redis": pool, "settings": settings, "job_try": 1}
    await on_startup(ctx)
    yield ctx
    await on_shutdown(ctx)
    await pool.aclose()


async def _assert_once(client: aioredis.Redis, settings: Settings, n: int) -> None:
    records = await stream_records(client, Keys(settings.namespace))
    assert len(records) == n
    assert len({(r["id"], r["version"]) for r in records}) == n


async def test_one_job_run_twice_concurrently_delivers_every_item_once(
    settings: Settings, feed_server: FeedServer, job_ctx: dict[str, Any], client: aioredis.Redis
) -> None:
    # Both runs are mid-fetch at once, read the same (empty) state and race to deliver.
    url = feed_server.serve("twice.xml", _feed(30, "t"), delays=[0.3, 0.3])
    first, second = await asyncio.gather(fetch_once(job_ctx, url), fetch_once(job_ctx, url))
    assert first["new"] + second["new"] == 30
    assert {first["new"], second["new"]} == {0, 30}  # one script call won every item
    await _assert_once(client, settings, 30)
    stats = await client.hgetall(Keys(settings.namespace).stats)
    assert stats[b"items_new"] == b"30"  # counters add only what was newly delivered


async def test_a_job_retried_after_its_worker_was_killed_mid_job_delivers_every_item_once(
    settings: Settings, feed_server: FeedServer, client: aioredis.Redis
) -> None:
    settings = dataclasses.replace(settings, job_timeout=2)
    url = feed_server.serve("slow.xml", _feed(25, "k"), delays=[30])  # the first fetch hangs
    env = {**env_for(settings), "INGEST_JOB_TIMEOUT": "2"}
    proc = await asyncio.create_subprocess_exec(*INGEST, "worker", env=env, start_new_session=True)
    pool = await connect_arq(settings)
    try:
        job = await pool.enqueue_job("fetch_once", url)
        assert job is not None
        for _ in range(600):  # bounded: until the worker is inside the job, fetching
            if feed_server.hits.get("/custom/slow.xml"):
                break
            await asyncio.sleep(0.05)
        assert feed_server.hits["/custom/slow.xml"] == 1
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        assert await client.xlen(Keys(settings.namespace).items_stream) == 0

        # A new worker: its reaper frees the job once the dead worker's heartbeat
        # expires (worker_heartbeat_ttl, docs/processes.md), and arq runs it again.
        async with running_worker(settings):
            result = await job.result(timeout=40, poll_delay=0.1)
            info = await job.info()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        await pool.aclose()
    assert result["new"] == 25
    assert info is not None and info.job_try == 2
    assert feed_server.hits["/custom/slow.xml"] == 2
    await _assert_once(client, settings, 25)


async def test_redis_failing_mid_job_is_retried_and_the_last_try_is_dead_lettered(
    settings: Settings, feed_server: FeedServer, job_ctx: dict[str, Any], client: aioredis.Redis,
    worker: None,
) -> None:
    keys = Keys(settings.namespace)
    url = feed_server.serve("flaky.xml", _feed(5, "f"))
    app = WorkerContext.of(job_ctx)
    # The delivery connection points at a port where no Redis listens: fails mid-job.
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    broken = dataclasses.replace(app, deliverer=Deliverer(dead, keys, 1000, 3600))
    ctx = {**job_ctx, "ingest": broken}

    with pytest.raises(Retry) as retry:
        await fetch_once({**ctx, "job_try": 2}, url)
    assert retry.value.defer_score == int(retry_delay(2, settings.job_retry_seconds) * 1000)

    outcome = await fetch_once({**ctx, "job_try": settings.job_max_tries}, url)
    await dead.aclose()
    assert outcome["stage"] == "job" and "ConnectionError" in outcome["error"]
    assert (await client.hgetall(keys.stats))[b"job_failures"] == b"1"
    assert await client.xlen(keys.items_stream) == 0

    code, out, err = await run_cli(settings, "dead", "--kind", "job")
    assert code == 0, err
    assert "job" in out and url in out

    # Put it back: the URL is enqueued again and this time delivered (by the worker fixture).
    code, out, err = await run_cli(settings, "dead", "retry")
    assert code == 0, err
    assert "retried 1 of 1" in out
    for _ in range(200):  # bounded
        if await client.xlen(keys.items_stream) == 5:
            break
        await asyncio.sleep(0.05)
    await _assert_once(client, settings, 5)
    assert await client.xlen(keys.dead_stream) == 0


async def test_dead_retry_of_a_parse_failure_fetches_the_url_again(
    settings: Settings, feed_server: FeedServer, worker: None, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    url = feed_server.serve("broken.xml", b"<html>not a feed</html>", content_type="text/html")
    code, _, err = await run_cli(settings, "enqueue", "--wait", url)
    assert code == 1 and "not a feed" in err
    code, out, _ = await run_cli(settings, "dead", "--json")
    assert '"kind":"parse"' in out and url in out

    feed_server.serve("broken.xml", _feed(3, "p"))  # the publisher fixed it
    code, out, err = await run_cli(settings, "dead", "retry", "--kind", "parse")
    assert code == 0 and "retried 1 of 1" in out, err
    for _ in range(200):  # bounded
        if await client.xlen(keys.items_stream) == 3:
            break
        await asyncio.sleep(0.05)
    await _assert_once(client, settings, 3)
    code, out, _ = await run_cli(settings, "dead")
    assert (code, out) == (0, "")


async def test_a_job_whose_worker_died_on_every_try_is_dead_lettered_not_run_again(
    settings: Settings, feed_server: FeedServer, job_ctx: dict[str, Any], client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    url = feed_server.serve("killer.xml", _feed(3, "kl"))
    outcome = await fetch_once({**job_ctx, "job_try": settings.job_max_tries + 1}, url)
    assert outcome["stage"] == "job" and "died or was stopped each time" in outcome["error"]
    assert feed_server.hits.get("/custom/killer.xml") is None  # not run again
    [(_, fields)] = await client.xrange(keys.dead_stream)
    assert fields[b"kind"] == b"job" and fields[b"url"] == url.encode()
    assert (await client.hgetall(keys.stats))[b"job_failures"] == b"1"


def test_packed_state_keeps_a_pending_mark_apart_from_the_hash_alone() -> None:
    """A version waiting for its article page is stored as `hash~pending` (#15); its
    64-bit digest (#13) must differ from the hash's, or the final state (same text,
    marked "failed") would be skipped as already delivered."""
    from ingest.deliver.state import digest8, pack_state, parse_state

    content_hash = "0123456789abcdef" * 2
    assert digest8(content_hash) == bytes.fromhex(content_hash[:16])
    assert digest8(content_hash + "~pending") != digest8(content_hash)
    state = parse_state(pack_state(3, content_hash + "~pending", "f" * 32, 20_000))
    assert (state.version, state.seen_day) == (3, 20_000)
    assert state.content_hash != digest8(content_hash).hex()
