"""Fetched bodies -> arq parse jobs, by name. The only link from `ingest` to `workers`.

`enqueue_fetch` and `job_outcome` are `ingest enqueue [--wait]` and
`POST /api/v1/enqueue`: one fetch_once job per URL, and its result as a value.

Backpressure lives here too (`QueueRoom`): when more than `queue_bound` jobs
wait in the queue (workers fall behind), fetchers wait instead of piling bodies
into Redis memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import redis.asyncio as aioredis
from arq.connections import ArqRedis
from arq.jobs import Job

from ingest.jobwatch import job_progress, wait_message
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from ingest.poll.fetch import check_scheme
from ingest.settings import Settings
from ingest.wakeup import announce, enqueue_announced

__all__ = ["QueueRoom", "enqueue_fetch", "enqueue_parse", "job_arguments", "job_outcome"]


async def enqueue_fetch(pool: ArqRedis, urls: list[str], settings: Settings) -> list[Job]:
    """One fetch_once job per URL; every URL is checked before anything is queued."""
    for url in urls:
        check_scheme(url, settings)  # raises URLRefused
    jobs = []
    for url in urls:
        job = await pool.enqueue_job("fetch_once", url)
        assert job is not None  # no _job_id given, so arq always enqueues
        jobs.append(job)
    await announce(pool)
    return jobs


async def job_outcome(job: Job, url: str, timeout: float, redis: aioredis.Redis, keys: Keys) -> dict[str, Any]:
    """Wait for a fetch_once job: its result, or {"error", "stage"} saying why there is none
    (for a wait that ran out: where the job is, queued or running and on which worker)."""
    try:
        result: dict[str, Any] = await job.result(timeout=timeout, poll_delay=0.05)
    except TimeoutError:
        progress = await job_progress(redis, keys, job)
        return {"url": url, "stage": "wait", "error": wait_message(timeout, progress), "status": progress.status}
    except Exception as e:  # noqa: BLE001 - the job's own exception, re-raised by arq
        return {"url": url, "stage": "job", "error": f"job failed: {type(e).__name__}: {e}"}
    return {"url": url, **result}


async def enqueue_parse(pool: ArqRedis, spec: FeedSpec, fetched: Fetched) -> None:
    """One parse_feed job for a fetched body, queued and announced in one round trip."""
    await enqueue_announced(pool, "parse_feed", job_arguments(spec), job_arguments(fetched))


def job_arguments(value: FeedSpec | Fetched) -> dict[str, Any]:
    """Pure: a FeedSpec's or a Fetched's fields as the job's map (the worker rebuilds the
    dataclass from it): what `dataclasses.asdict` gave, tags as a list and the headers
    a plain dict, without its recursive deep copy (~50 µs a changed feed, #21)."""
    fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, FeedSpec):
        fields["tags"] = list(value.tags)
    else:
        fields["headers"] = dict(value.headers)
    return fields


class QueueRoom:
    """Whether the parse queue has room (at most `bound` jobs waiting), for one poller.

    The poller asks before each claim, every `poll_batch / 8` polls; a ZCARD each time
    cost a round trip (#21). So the length read last is kept with the jobs this poller
    queued since: within `look_seconds` (0.1 s) of the last read, while those add up to
    no more than `bound`, the answer is yes without asking Redis. Exact for one daemon
    (its own jobs are counted; workers only shorten the queue); with several daemons
    the queue may pass its bound by what the others queue in 0.1 s.
    """

    def __init__(self, pool: ArqRedis, keys: Keys, bound: int, look_seconds: float = 0.1) -> None:
        self.pool = pool
        self.keys = keys
        self.bound = bound
        self.look_seconds = look_seconds
        self._length = 0  # the queue's length when last read
        self._queued = 0  # jobs this poller queued since
        self._look_at = 0.0  # monotonic time from which Redis is asked again

    def queued(self) -> None:
        """This poller queued a job."""
        self._queued += 1

    async def wait(self, stop: asyncio.Event) -> bool:
        """Wait while the queue holds more than `bound` jobs; False if stopped meanwhile."""
        if time.monotonic() < self._look_at and self._length + self._queued <= self.bound:
            return not stop.is_set()
        delay = 0.05
        while (length := await self.pool.zcard(self.keys.queue)) > self.bound:
            if stop.is_set():
                return False
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 1.0)
        self._length, self._queued, self._look_at = length, 0, time.monotonic() + self.look_seconds
        return not stop.is_set()
