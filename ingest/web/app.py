"""The aiohttp application: shared clients, middlewares, and the routes of each resource.

Clients are made lazily and never ping at start: the server comes up (and
`/healthz` answers) while Redis or the store is down, and every route that
needs them answers 503 until they are back. Route handlers live in one
module per resource (routes_*.py, sse.py, metrics.py, status.py); this
module only assembles them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from arq.connections import ArqRedis

from ingest.jobcodec import deserialize_job, serialize_job
from ingest.keys import Keys
from ingest.redis_conn import data_client
from ingest.settings import Settings
from ingest.store import Sink, open_sink
from ingest.web.access import auth_middleware, install_cors
from ingest.web.errors import error_middleware

__all__ = ["MAX_BODY_BYTES", "SERVICES", "Services", "build_app"]

MAX_BODY_BYTES = 1_000_000  # a JSON request is a few URLs or settings; more is a mistake (413)


@dataclass
class Services:
    """What the handlers share: settings, key names, one Redis client, lazy arq/store/HTTP clients."""

    settings: Settings
    keys: Keys
    redis: aioredis.Redis
    arq: ArqRedis
    _sink: Sink | None = None
    _session: aiohttp.ClientSession | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    live_streams: int = 0  # open SSE responses (each holds a Redis connection in XREAD)

    @classmethod
    def of(cls, settings: Settings) -> Services:
        # No socket timeout: SSE readers block in XREAD; connecting fails fast instead.
        redis = data_client(settings, socket_connect_timeout=3)
        arq = ArqRedis(aioredis.ConnectionPool.from_url(settings.effective_queue_url, socket_connect_timeout=3),
                       job_serializer=serialize_job, job_deserializer=deserialize_job,
                       default_queue_name=Keys.for_settings(settings).queue)
        return cls(settings=settings, keys=Keys.for_settings(settings), redis=redis, arq=arq)

    async def sink(self) -> Sink:
        async with self._lock:
            if self._sink is None:
                sink = open_sink(self.settings.effective_storage_url)
                await sink.open()
                self._sink = sink
            return self._sink

    def session(self) -> aiohttp.ClientSession:
        from ingest.poll.fetch import new_session

        if self._session is None:
            self._session = new_session(self.settings)
        return self._session

    async def close(self) -> None:
        if self._sink is not None:
            await self._sink.close()
        if self._session is not None:
            await self._session.close()
        await self.arq.aclose()
        await self.redis.aclose()


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def build_app(settings: Settings) -> web.Application:
    """The whole HTTP surface (docs/api.md): API, SSE, metrics, status page, health."""
    from ingest.web import metrics, openapi, routes_feeds, routes_items, routes_ops, routes_push, sse, status

    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[error_middleware, auth_middleware(settings.api_token)])
    install_cors(app, settings.cors_origins)
    services = Services.of(settings)
    app[SERVICES] = services
    for module in (routes_ops, routes_feeds, routes_items, routes_push, sse, metrics, status, openapi):
        app.add_routes(module.routes)

    async def close(_: web.Application) -> None:
        await services.close()

    app.on_cleanup.append(close)
    return app
