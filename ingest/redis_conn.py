"""Connections to Redis, for our own commands and for arq.

One place turns Settings into clients so that the embedded socket, URLs and
the "is it running?" error message are decided once.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.exceptions import RedisError

from ingest.errors import RedisUnavailable
from ingest.jobcodec import deserialize_job, serialize_job
from ingest.keys import Keys
from ingest.settings import Settings

__all__ = ["arq_redis_settings", "connect", "connect_arq"]


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
    client: aioredis.Redis = aioredis.Redis.from_url(settings.effective_redis_url, decode_responses=False)
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
