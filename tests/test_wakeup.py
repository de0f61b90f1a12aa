"""A queued job starts when it is announced, not at the worker's next poll (ingest/wakeup.py).

The workers here poll every 30 s, so anything that runs within a few seconds
was started by a wake: the announcement, or the end of another job."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.exceptions
from arq.connections import ArqRedis, create_pool
from arq.jobs import Job, JobStatus

from ingest.keys import Keys
from ingest.redis_conn import arq_redis_settings
from ingest.settings import Settings
from ingest.wakeup import PromptWorker, announce, enqueue_announced, wake_channel
from tests.conftest import free_port
from tests.helpers import wait_until_async

SLOW_POLL = 30.0  # seconds: far longer than any wait below


async def note_run(ctx: dict[str, Any], tag: str) -> None:
    ctx["ran"].append((tag, time.monotonic()))


@contextlib.asynccontextmanager
async def prompt_worker(settings: Settings, ran: list[tuple[str, float]],
                        max_jobs: int = 10) -> AsyncIterator[tuple[PromptWorker, ArqRedis]]:
    queue = Keys.for_settings(settings).queue
    pool = await create_pool(arq_redis_settings(settings), default_queue_name=queue)
    worker = PromptWorker(functions=[note_run], redis_settings=arq_redis_settings(settings),
                          queue_name=queue, poll_delay=SLOW_POLL, max_jobs=max_jobs,
                          handle_signals=False, ctx={"ran": ran})
    task = asyncio.create_task(worker.async_run())
    try:
        # Subscribed and past its first look at the (empty) queue: from now on only
        # a wake or the 30 s poll starts a job.
        assert await wait_until_async(lambda: worker._listener is not None, timeout=10)
        await asyncio.sleep(0.3)
        yield worker, pool
    finally:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await pool.aclose()


async def test_an_announced_job_starts_at_once_and_an_unannounced_one_waits(settings: Settings) -> None:
    ran: list[tuple[str, float]] = []
    async with prompt_worker(settings, ran) as (worker, pool):
        await pool.enqueue_job("note_run", "quiet")
        await asyncio.sleep(1.5)
        assert ran == [], "a job nobody announced must wait for the next poll"

        await pool.enqueue_job("note_run", "announced")
        announced_at = time.monotonic()
        await announce(pool)
        assert await wait_until_async(lambda: len(ran) == 2, timeout=5)
        assert {tag for tag, _ in ran} == {"quiet", "announced"}
        assert all(at - announced_at < 5 for _, at in ran)
        assert worker.idle_poll == SLOW_POLL


async def test_the_end_of_a_job_is_a_wake_for_the_next(settings: Settings) -> None:
    ran: list[tuple[str, float]] = []
    async with prompt_worker(settings, ran, max_jobs=1) as (_, pool):
        for n in range(3):
            await pool.enqueue_job("note_run", f"job {n}")
        await announce(pool)  # one announcement; room after each job does the rest
        assert await wait_until_async(lambda: len(ran) == 3, timeout=10)


async def test_the_listener_resubscribes_after_its_connection_is_killed(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    ran: list[tuple[str, float]] = []
    channel = wake_channel(Keys.for_settings(settings).queue).encode()
    async with prompt_worker(settings, ran) as (_, pool):
        assert sync_redis.pubsub_numsub(channel) == [(channel, 1)]
        sync_redis.client_kill_filter(_type="pubsub")
        assert await wait_until_async(lambda: sync_redis.pubsub_numsub(channel) == [(channel, 1)], timeout=10)
        await pool.enqueue_job("note_run", "after the kill")
        await announce(pool)
        assert await wait_until_async(lambda: len(ran) == 1, timeout=5)


async def test_announce_on_a_dead_redis_is_silent() -> None:
    """The job is queued already (or its enqueue failed loudly): the wake is best effort."""
    pool = ArqRedis(host="127.0.0.1", port=free_port(), default_queue_name="x:queue",
                    socket_connect_timeout=1)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await pool.ping()  # nothing listens there
        await announce(pool)
    finally:
        await pool.aclose()


async def test_two_workers_run_every_job_once(settings: Settings) -> None:
    """The one-step claim keeps arq's promise: a job runs in one worker only."""
    ran: list[tuple[str, float]] = []
    async with prompt_worker(settings, ran, max_jobs=3) as (_, pool), \
            prompt_worker(settings, ran, max_jobs=3):
        for n in range(40):
            await pool.enqueue_job("note_run", f"job {n}")
        await announce(pool)
        assert await wait_until_async(lambda: len(ran) >= 40, timeout=20)
        await asyncio.sleep(0.5)
        tags = [tag for tag, _ in ran]
        assert sorted(tags) == sorted(f"job {n}" for n in range(40)), "each job once"


async def test_a_job_running_elsewhere_or_not_due_is_not_claimed(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    ran: list[tuple[str, float]] = []
    async with prompt_worker(settings, ran) as (worker, pool):
        busy = await pool.enqueue_job("note_run", "busy elsewhere")
        assert busy is not None
        # Another worker holds it (arq's in-progress key), from before this look.
        sync_redis.psetex(f"arq:in-progress:{busy.job_id}", 60_000, b"1")
        later = await pool.enqueue_job("note_run", "deferred", _defer_by=60)
        assert later is not None
        assert await worker.look() == 0
        await asyncio.sleep(1.0)
        assert ran == [] and worker.job_counter == 0, "neither claimed, the counter given back"
        assert not sync_redis.exists(f"arq:in-progress:{later.job_id}"), "not due: left unmarked"

        sync_redis.delete(f"arq:in-progress:{busy.job_id}")  # the holder died, its key expired
        assert await worker.look() == 1
        assert await wait_until_async(lambda: len(ran) == 1, timeout=5)
        assert ran[0][0] == "busy elsewhere"


async def test_one_look_claims_no_more_jobs_than_the_worker_has_room_for(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    """A look is one script call (decisions 155, 168): it takes at most the worker's
    room, in the queue's order, and leaves the others unmarked for a later look."""
    ran: list[tuple[str, float]] = []
    async with prompt_worker(settings, ran, max_jobs=2) as (worker, pool):
        worker.allow_pick_jobs = False  # only the looks below
        jobs = [await pool.enqueue_job("note_run", f"job {n}") for n in range(5)]
        tags = {job.job_id: f"job {n}" for n, job in enumerate(jobs) if job is not None}
        # The queue's order: by score (the enqueue's millisecond), then by id, as arq reads it.
        ids = [i.decode() for i in sync_redis.zrange(Keys.for_settings(settings).queue, 0, -1)]
        assert sorted(ids) == sorted(tags)
        assert await worker.look() == 2
        assert worker.job_counter == 2 and set(worker.tasks) == set(ids[:2])
        assert worker._left_jobs, "full: a job's end looks again"
        assert not any(sync_redis.exists(f"arq:in-progress:{i}") for i in ids[2:]), "the rest unmarked"
        assert await wait_until_async(lambda: len(ran) == 2, timeout=5)
        assert sorted(tag for tag, _ in ran) == sorted(tags[i] for i in ids[:2])
        assert await wait_until_async(lambda: worker.job_counter == 0, timeout=5)
        assert await worker.look() == 2  # the first two are done (and out of the queue)
        assert await wait_until_async(lambda: len(ran) == 4, timeout=5)
        assert sorted(tag for tag, _ in ran) == sorted(tags[i] for i in ids[:4])
        assert not sync_redis.exists(f"arq:in-progress:{ids[4]}")


async def test_a_look_reads_and_claims_in_one_round_trip(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """arq reads the queue's head, then claims: a look here is one request (decision 168),
    whether it claims a job or finds nothing to claim."""
    from redis.asyncio.connection import AbstractConnection

    ran: list[tuple[str, float]] = []
    async with prompt_worker(settings, ran, max_jobs=3) as (worker, pool):
        worker.allow_pick_jobs = False  # only the looks below
        sent = [0]
        send = AbstractConnection.send_packed_command

        async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
            sent[0] += 1
            await send(self, command, check_health)

        await worker.look()  # the script is loaded (EVALSHA answers NOSCRIPT once per server)
        job = await pool.enqueue_job("note_run", "one")
        assert job is not None
        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
        assert await worker.look() == 1
        assert sent[0] == 1, "read and claim in one request"
        assert await worker.look() == 0  # the job runs here (or has ended): nothing to claim
        assert sent[0] == 2
        monkeypatch.undo()
        assert await wait_until_async(lambda: len(ran) == 1, timeout=5)


async def test_a_burst_worker_runs_arqs_own_iteration_to_the_end(settings: Settings) -> None:
    """Burst mode (not the service's) keeps arq's own read and claim: every job runs
    once, and the worker stops when the queue is empty."""
    queue = Keys.for_settings(settings).queue
    ran: list[tuple[str, float]] = []
    pool = await create_pool(arq_redis_settings(settings), default_queue_name=queue)
    try:
        for n in range(5):
            await pool.enqueue_job("note_run", f"job {n}")
        worker = PromptWorker(functions=[note_run], redis_settings=arq_redis_settings(settings),
                              queue_name=queue, poll_delay=0.05, burst=True, handle_signals=False,
                              ctx={"ran": ran})
        try:
            await asyncio.wait_for(worker.async_run(), timeout=20)
        finally:
            await worker.close()
        assert sorted(tag for tag, _ in ran) == [f"job {n}" for n in range(5)]
        assert await pool.zcard(queue) == 0
    finally:
        await pool.aclose()


async def test_a_job_queued_in_one_step_is_arqs_own_record_and_starts_at_once(settings: Settings) -> None:
    ran: list[tuple[str, float]] = []
    async with prompt_worker(settings, ran, max_jobs=1) as (_, pool):
        job_id = await enqueue_announced(pool, "note_run", "one step")
        job = Job(job_id, redis=pool, _queue_name=pool.default_queue_name,
                  _deserializer=pool.job_deserializer)
        assert await wait_until_async(lambda: len(ran) == 1, timeout=5), "announced: no 30 s poll"
        assert ran[0][0] == "one step"
        for _ in range(100):
            if await job.status() == JobStatus.complete:
                break
            await asyncio.sleep(0.05)
        assert await job.status() == JobStatus.complete
        info = await job.info()
        assert info is not None and info.function == "note_run" and info.args == ("one step",)
        assert info.enqueue_time is not None


async def test_a_job_queued_in_one_step_is_stored_as_arq_stores_it(
    settings: Settings, sync_redis: redis.Redis
) -> None:
    """The transaction (decision 154) writes what arq's enqueue_job writes: the job
    under its key with arq's expiry, its id in the queue scored by its enqueue time,
    and the announcement; the next job's record is its own."""
    queue = Keys.for_settings(settings).queue
    pool = await create_pool(arq_redis_settings(settings), default_queue_name=queue)
    pubsub = sync_redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(wake_channel(queue))
    try:
        body = bytes(range(256)) * 400  # a fetched body: ~100 KB of any bytes
        first = await enqueue_announced(pool, "note_run", {"body": body})
        second = await enqueue_announced(pool, "note_run", "next")
        assert first != second
        job = Job(first, redis=pool, _queue_name=queue, _deserializer=pool.job_deserializer)
        info = await job.info()
        assert info is not None and info.function == "note_run" and info.args == ({"body": body},)
        assert info.enqueue_time is not None
        score = sync_redis.zscore(queue, first)
        assert score is not None and int(score) == int(info.enqueue_time.timestamp() * 1000)
        ttl = sync_redis.pttl(f"arq:job:{first}")
        assert pool.expires_extra_ms - 60_000 < ttl <= pool.expires_extra_ms
        assert sync_redis.zcard(queue) == 2
        messages = []
        deadline = time.monotonic() + 5
        while len(messages) < 2 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                messages.append(message["data"])
        assert messages == [b"", b""], "each job announced once"
    finally:
        pubsub.close()
        await pool.aclose()


async def test_a_job_end_looks_again_only_when_the_last_look_left_jobs(settings: Settings) -> None:
    """With room to spare, every job was claimed at the look its announcement caused: the
    end of one is no reason to read the queue again (two round trips a job, #21)."""
    ran: list[tuple[str, float]] = []
    async with prompt_worker(settings, ran, max_jobs=10) as (worker, pool):
        looks = [0]
        look = worker._poll_iteration

        async def counted() -> None:
            looks[0] += 1
            await look()

        worker._poll_iteration = counted  # type: ignore[method-assign]
        await asyncio.sleep(0.3)  # a look already waiting on the wake ends with the next one
        looks[0] = 0
        await pool.enqueue_job("note_run", "room to spare")
        await announce(pool)
        assert await wait_until_async(lambda: len(ran) == 1, timeout=5)
        await asyncio.sleep(1.0)
        assert looks[0] == 1 and not worker._left_jobs

        # Full (max_jobs 10, 12 queued): the look leaves two, a job's end fetches them.
        for n in range(12):
            await pool.enqueue_job("note_run", f"job {n}")
        await announce(pool)
        assert await wait_until_async(lambda: len(ran) == 13, timeout=10)
