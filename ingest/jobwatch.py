"""What `ingest enqueue --wait` can say about a job it stopped waiting for.

"No result within 120 s; is a worker running?" was printed even when a
worker was simply busy with the job (#12). Every worker notes which jobs it
runs and since when in `<ns>:running` (ingest/liveness.py, the same note the
reaper reads); when the wait ends without a result, `job_progress` reads that and arq's own
state, and `wait_message` (pure) says what is known: still queued (and how
many jobs are ahead), waiting for a retry, or running since when on which
worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from arq.jobs import Job, JobStatus

from ingest.keys import Keys
from ingest.liveness import read_running_note

__all__ = ["JobProgress", "job_progress", "wait_message"]


@dataclass(frozen=True)
class JobProgress:
    status: str  # arq's JobStatus value: queued, deferred, in_progress, complete, not_found
    ahead: int | None = None  # jobs queued before this one
    job_try: int | None = None  # which try runs or waits
    worker: str | None = None  # host:pid running it
    since: str | None = None  # when that try started (ISO UTC)
    retry_at: str | None = None  # when a deferred try becomes due (ISO UTC)


async def job_progress(redis: aioredis.Redis, keys: Keys, job: Job) -> JobProgress:
    status = await job.status()
    info = await job.info()
    job_try = info.job_try if info else None
    if status == JobStatus.in_progress:
        worker, since = read_running_note(await redis.hget(keys.running_jobs, job.job_id))  # type: ignore[misc]
        return JobProgress(status.value, job_try=job_try, worker=worker, since=since)
    if status == JobStatus.queued:
        rank = await redis.zrank(keys.queue, job.job_id)
        return JobProgress(status.value, ahead=rank, job_try=job_try)
    if status == JobStatus.deferred and info and info.score:
        due = datetime.fromtimestamp(info.score / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return JobProgress(status.value, job_try=job_try, retry_at=due)
    return JobProgress(status.value, job_try=job_try)


def wait_message(timeout: float, progress: JobProgress) -> str:
    """What is known when `timeout` passed without a result (the caller names the URL). Pure."""
    waited = f"no result within {timeout:g} s"
    if progress.status == JobStatus.in_progress.value:
        where = f" on worker {progress.worker}" if progress.worker else ""
        since = f" since {progress.since}" if progress.since else ""
        attempt = f" (try {progress.job_try})" if progress.job_try and progress.job_try > 1 else ""
        return (f"{waited}; the job is running{since}{where}{attempt} and will finish "
                "on its own (see `ingest stats` and `ingest feeds`)")
    if progress.status == JobStatus.queued.value:
        ahead = f" behind {progress.ahead} other jobs" if progress.ahead else ""
        return (f"{waited}; the job is still queued{ahead}: no worker has taken it. "
                "Is a worker running (`ingest run` or `ingest worker`), or are they all busy?")
    if progress.status == JobStatus.deferred.value:
        when = f" at {progress.retry_at}" if progress.retry_at else ""
        return f"{waited}; the job failed transiently and waits for try {progress.job_try}{when}"
    if progress.status == JobStatus.complete.value:
        return "the job finished just as the wait ended; run the command again to see it"
    return f"{waited}; the job is no longer known to Redis (expired or removed)"
