"""The typed state a worker process shares between jobs, built once in on_startup.

arq hands tasks an untyped dict; tasks call `WorkerContext.of(ctx)` and get
named, typed clients instead of string keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from ingest.deliver.publish import Deliverer
from ingest.keys import Keys
from ingest.liveness import new_worker_id
from ingest.poll.fetch import new_session
from ingest.redis_conn import connect
from ingest.settings import Settings, load_settings
from workers import deadline
from workers.clusters.index import ClusterIndex
from workers.limits import Limits
from workers.liveness import WorkerLiveness
from workers.normalize.record import NormalizeOptions

__all__ = ["WorkerContext", "after_job_end", "on_job_start", "on_shutdown", "on_startup"]

log = logging.getLogger(__name__)

_CTX_KEY = "ingest"

# Keys of arq's ctx that `ingest.daemon.make_worker` fills for a worker process.
CTX_WORKER_ID = "worker_id"  # the id its supervisor knows it by (else a new one)
CTX_ALIVE_FILE = "alive_file"  # a file to touch on every heartbeat (the supervisor watches it)
CTX_PROCESS_GUARD = "process_guard"  # a process of its own: arm parse deadlines, exit when stuck


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    keys: Keys
    redis: aioredis.Redis  # the data: one Redis or a Redis Cluster (ingest/redis_conn.py)
    queue: ArqRedis  # arq's own pool on the queue's Redis: jobs, liveness notes, job marks
    session: aiohttp.ClientSession  # one HTTP connection pool per worker process
    deliverer: Deliverer
    clusters: ClusterIndex  # the near-duplicate index (issue #4), on the same Redis
    normalize: NormalizeOptions  # settings the normalizer depends on (issue #4)
    liveness: WorkerLiveness  # heartbeat, job notes and the dead workers' reaper (issue #12)
    limits: Limits  # caps on entries and record fields (issue #12)

    @staticmethod
    def of(ctx: dict[str, Any]) -> WorkerContext:
        app = ctx[_CTX_KEY]
        assert isinstance(app, WorkerContext)
        return app


def _same_redis(settings: Settings) -> bool:
    return not settings.redis_cluster and settings.effective_queue_url == settings.effective_redis_url


async def on_startup(ctx: dict[str, Any]) -> None:
    # `ingest worker` / `ingest run` pass their Settings in ctx; the plain
    # `arq workers.settings.WorkerSettings` path reads config and environment.
    settings = ctx.get("settings") or load_settings()
    keys = Keys.for_settings(settings)
    queue: ArqRedis = ctx["redis"]
    # The data share arq's pool when they live on the same single Redis (the default).
    redis: aioredis.Redis = queue if _same_redis(settings) else await connect(settings)
    guard = bool(ctx.get(CTX_PROCESS_GUARD))
    if guard and not deadline.install():
        log.warning("parse deadlines are off: the worker does not run in the main thread")
    alive_file = ctx.get(CTX_ALIVE_FILE)
    liveness = WorkerLiveness(settings, ctx.get(CTX_WORKER_ID) or new_worker_id(),
                              Path(alive_file) if alive_file else None, exit_on_stall=guard)
    liveness.start(queue, redis)
    ctx[_CTX_KEY] = WorkerContext(
        settings=settings,
        keys=keys,
        redis=redis,
        queue=queue,
        session=new_session(settings),
        deliverer=Deliverer(redis, keys, settings.stream_xadd_cap, settings.item_retention_seconds,
                            settings.max_versions, settings.stream_record),
        clusters=ClusterIndex.from_settings(redis, keys, settings),
        normalize=NormalizeOptions.from_settings(settings),
        liveness=liveness,
        limits=Limits.from_settings(settings),
    )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    app = ctx.get(_CTX_KEY)
    if isinstance(app, WorkerContext):
        await app.liveness.stop(app.queue)
        await app.session.close()
        if app.redis is not app.queue:
            await app.redis.aclose()


async def on_job_start(ctx: dict[str, Any]) -> None:
    """Note the job as ours, so a reaper can free it at once if this process dies."""
    app = WorkerContext.of(ctx)
    await app.liveness.job_started(app.queue, ctx["job_id"])


async def after_job_end(ctx: dict[str, Any]) -> None:
    """arq has recorded the outcome (in-progress marker gone): the note can go."""
    app = WorkerContext.of(ctx)
    await app.liveness.job_finished(app.queue, ctx["job_id"])
