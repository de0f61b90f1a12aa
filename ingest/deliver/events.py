"""Feed state changes on `<ns>:events`: one JSON object per change.

{"event": "added"|"removed"|"disabled"|"enabled"|"moved"|"error"|"recovered",
 "feed_id": ..., "url": ..., "at": ISO 8601 UTC, plus "reason" / "to" / "error"}
WebSub (ingest/push/) adds "subscribed", "unsubscribed", "push_refused" and
"push_stale", with "hub" and "topic" instead of "url" (docs/redis.md).
Pub/Sub only: live and best effort, like the item channels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.redis_conn import publish

__all__ = ["publish_events"]


async def publish_events(redis: aioredis.Redis, keys: Keys, events: Iterable[dict[str, Any]]) -> None:
    events = list(events)
    if not events:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            publish(pipe, keys, keys.events_channel, orjson.dumps(event))
        await pipe.execute()
