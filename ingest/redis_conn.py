"""Connections to Redis, for our own commands and for arq.

One place turns Settings into clients so that the embedded socket, URLs and
the "is it running?" error message are decided once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import hiredis
import redis.asyncio as aioredis
import redis.asyncio.connection as aioconn
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.exceptions import DataError, RedisError

from ingest.errors import RedisUnavailable
from ingest.jobcodec import deserialize_job, serialize_job
from ingest.keys import Keys
from ingest.settings import Settings

__all__ = ["arq_redis_settings", "connect", "connect_arq", "connection_class_for"]


class _HiredisPacking:
    """Commands packed by hiredis (C) instead of redis-py's Python loop.

    redis-py's synchronous client already packs with hiredis when it is installed
    (its HiredisRespSerializer, whose rules this repeats); its asyncio client
    does not. A delivery or cluster-index call carries hundreds of arguments,
    and packing them one by one in Python cost ~60 µs per stored entry (#9).
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        try:
            return [hiredis.pack_command(args)]
        except TypeError as e:
            raise DataError(str(e)) from e


class _Connection(_HiredisPacking, aioconn.Connection):
    pass


class _UnixConnection(_HiredisPacking, aioconn.UnixDomainSocketConnection):
    pass


class _SSLConnection(_HiredisPacking, aioconn.SSLConnection):
    pass


def connection_class_for(url: str) -> type[aioconn.AbstractConnection]:
    """The asyncio connection class for a Redis URL (its scheme), packing with hiredis."""
    return {"unix": _UnixConnection, "rediss": _SSLConnection}.get(urlsplit(url).scheme, _Connection)


def arq_redis_settings(settings: Settings) -> RedisSettings:
    rs = RedisSettings.from_dsn(settings.effective_redis_url)
    rs.conn_retries = 2
    return rs


def _unreachable(settings: Settings, e: Exception) -> RedisUnavailable:
    if settings.embedded:
        return RedisUnavailable(
            f"the embedded Redis at {settings.embedded_socket} is not running "
            f"(start the service with `ingest run`, or set INGEST_REDIS_URL): {e}"
        )
    return RedisUnavailable(f"cannot reach Redis at {settings.redis_url}: {e}")


async def connect(settings: Settings) -> aioredis.Redis:
    """A client for our own commands; fails fast with a message saying what to start."""
    url = settings.effective_redis_url
    client: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)
    # from_url lets the URL's scheme pick the connection class over any given: set it after.
    client.connection_pool.connection_class = connection_class_for(url)
    try:
        await client.ping()
    except (RedisError, OSError) as e:
        await client.aclose()
        raise _unreachable(settings, e) from e
    return client


async def connect_arq(settings: Settings) -> ArqRedis:
    """An arq pool whose default queue is the namespaced one."""
    try:
        return await create_pool(
            arq_redis_settings(settings), default_queue_name=Keys(settings.namespace).queue,
            job_serializer=serialize_job, job_deserializer=deserialize_job,
        )
    except (RedisError, OSError) as e:
        raise _unreachable(settings, e) from e
