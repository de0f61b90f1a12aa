"""The typed state a worker process shares between jobs, built once in on_startup.

arq hands tasks an untyped dict; tasks call `WorkerContext.of(ctx)` and get
named, typed clients instead of string keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from arq.connections import ArqRedis

from ingest.deliver.publish import Deliverer
from ingest.keys import Keys
from ingest.poll.fetch import new_session
from ingest.settings import Settings, load_settings
from workers.clusters.index import ClusterIndex
from workers.limits import Limits
from workers.normalize.record import NormalizeOptions

__all__ = ["WorkerContext", "on_shutdown", "on_startup"]

_CTX_KEY = "ingest"


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    keys: Keys
    redis: ArqRedis  # arq's own connection pool, reused for our commands
    session: aiohttp.ClientSession  # one HTTP connection pool per worker process
    deliverer: Deliverer
    clusters: ClusterIndex  # the near-duplicate index (issue #4), on the same Redis
    normalize: NormalizeOptions  # settings the normalizer depends on (issue #4)
    limits: Limits  # caps on entries and record fields (issue #12)

    @staticmethod
    def of(ctx: dict[str, Any]) -> WorkerContext:
        app = ctx[_CTX_KEY]
        assert isinstance(app, WorkerContext)
        return app


async def on_startup(ctx: dict[str, Any]) -> None:
    # `ingest worker` / `ingest run` pass their Settings in ctx; the plain
    # `arq workers.settings.WorkerSettings` path reads config and environment.
    settings = ctx.get("settings") or load_settings()
    keys = Keys(settings.namespace)
    redis: ArqRedis = ctx["redis"]
    ctx[_CTX_KEY] = WorkerContext(
        settings=settings,
        keys=keys,
        redis=redis,
        session=new_session(settings),
        deliverer=Deliverer(redis, keys, settings.stream_maxlen, settings.item_retention_seconds,
                            settings.max_versions),
        clusters=ClusterIndex.from_settings(redis, keys, settings),
        normalize=NormalizeOptions.from_settings(settings),
        limits=Limits.from_settings(settings),
    )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    app = ctx.get(_CTX_KEY)
    if isinstance(app, WorkerContext):
        await app.session.close()
