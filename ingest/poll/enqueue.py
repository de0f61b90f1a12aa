"""Fetched bodies -> arq parse jobs, by name. The only link from `ingest` to `workers`.

`enqueue_fetch` and `job_outcome` are `ingest enqueue [--wait]` and
`POST /api/v1/enqueue`: one fetch_once job per URL, and its result as a value.

Backpressure lives here too: when more than `queue_bound` jobs wait in the
queue (workers fall behind), fetchers wait instead of piling bodies into
Redis memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
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

__all__ = ["enqueue_fetch", "enqueue_parse", "job_outcome", "wait_for_room"]


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
    spec_dict = dataclasses.asdict(spec)
    spec_dict["tags"] = list(spec.tags)
    await enqueue_announced(pool, "parse_feed", spec_dict, dataclasses.asdict(fetched))


async def wait_for_room(pool: ArqRedis, keys: Keys, bound: int, stop: asyncio.Event) -> bool:
    """Wait while the queue holds more than `bound` jobs; False if stopped meanwhile."""
    delay = 0.05
    while await pool.zcard(keys.queue) > bound:
        if stop.is_set():
            return False
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, 1.0)
    return not stop.is_set()
