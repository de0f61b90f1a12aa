"""Feed records in Redis: which id a URL has, and what its last fetch did.

A feed's hash (`<ns>:feed:<feed_id>`) holds url, title, last_fetch_at,
last_status, last_error, consecutive_errors and items (delivered so far).
The polling scheduler (a later stage) adds its fields beside these.
Failures are counted in `<ns>:stats`; input that could not be processed goes
to the dead-letter stream `<ns>:dead` with the reason.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.models import DeliveryResult, FeedSpec, feed_id_for_url
from ingest.urls import canonical_url

__all__ = ["dead_letter", "feed_spec_for_url", "record_failure", "record_success"]

DEAD_STREAM_MAXLEN = 100_000


def _decode(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def feed_spec_for_url(redis: aioredis.Redis, keys: Keys, url: str) -> FeedSpec:
    """The feed a URL belongs to; its id is the hash of the canonical URL."""
    feed_id = feed_id_for_url(canonical_url(url) or url)
    title = await redis.hget(keys.feed(feed_id), "title")
    return FeedSpec(feed_id=feed_id, url=url, title=_decode(title))


async def record_success(
    redis: aioredis.Redis, keys: Keys, result: DeliveryResult, title: str, fetched_at: str, status: int
) -> None:
    key = keys.feed(result.feed_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={
            "url": result.feed_url, "title": title, "last_fetch_at": fetched_at,
            "last_status": status, "last_error": "", "consecutive_errors": 0,
        })
        pipe.hincrby(key, "items", result.new)
        pipe.hincrby(keys.stats, "fetches_ok", 1)
        await pipe.execute()


async def record_failure(
    redis: aioredis.Redis, keys: Keys, spec: FeedSpec, counter: str, error: str, at: str
) -> None:
    """Count the failure; note it on the feed only when the feed is already known.

    An unknown URL that fails (`ingest enqueue` of a typo) leaves no feed
    record behind: nothing half-written.
    """
    key = keys.feed(spec.feed_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.stats, counter, 1)
        pipe.exists(key)
        _, exists = await pipe.execute()
    if exists:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"last_error": error, "last_fetch_at": at})
            pipe.hincrby(key, "consecutive_errors", 1)
            await pipe.execute()


async def dead_letter(
    redis: aioredis.Redis, keys: Keys, kind: str, spec: FeedSpec, error: str, at: str
) -> None:
    """Keep input we could not process, with the reason, for `ingest dead` and humans."""
    await redis.xadd(
        keys.dead_stream,
        {"kind": kind, "feed_id": spec.feed_id, "url": spec.url, "error": error, "at": at},
        maxlen=DEAD_STREAM_MAXLEN,
        approximate=True,
    )
