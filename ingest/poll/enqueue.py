"""Fetched bodies -> arq parse jobs, by name. The only link from `ingest` to `workers`.

Backpressure lives here too: when more than `queue_bound` jobs wait in the
queue (workers fall behind), fetchers wait instead of piling bodies into
Redis memory.
"""

from __future__ import annotations

import asyncio
import dataclasses

from arq.connections import ArqRedis

from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched

__all__ = ["enqueue_parse", "wait_for_room"]


async def enqueue_parse(pool: ArqRedis, spec: FeedSpec, fetched: Fetched) -> None:
    spec_dict = dataclasses.asdict(spec)
    spec_dict["tags"] = list(spec.tags)
    await pool.enqueue_job("parse_feed", spec_dict, dataclasses.asdict(fetched))


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
