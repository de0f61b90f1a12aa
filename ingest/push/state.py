"""Subscription records in Redis: one hash per callback token, and the index set.

A record outlives its feed on purpose: when a feed is removed, the renewal
loop still finds the subscription (by the `<ns>:push_subs` index) and
unsubscribes it at its hub. The feed hash carries only what the feed views
show (`push_expires_at`, `last_push_at`); the secret never leaves this record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.redis_conn import ScriptCall, atomic_pipeline, run_script

__all__ = ["Subscription", "delete_subscription", "load_subscription", "load_subscriptions",
           "mark_feed", "note_polled_news", "polled_news_call", "save_subscription"]

# Subscription.state values.
SUBSCRIBING = "subscribing"  # asked, not verified yet
SUBSCRIBED = "subscribed"  # verified; the lease runs until lease_expires
UNSUBSCRIBING = "unsubscribing"  # unsubscribe asked, waiting for the hub's verification
FAILED = "failed"  # the hub refused, did not verify, or could not be reached; retried at retry_at


@dataclass(frozen=True)
class Subscription:
    """One subscription of one feed's topic at one hub."""

    token: str  # the unguessable last path segment of the callback URL
    feed_id: str  # the feed it serves
    hub: str  # hub URL the requests go to
    topic: str  # hub.topic: the feed's self URL (or its URL when it names none)
    callback: str  # full callback URL given to the hub
    secret: str  # hub.secret: HMAC key of content distribution
    state: str = SUBSCRIBING  # one of the constants above
    pending: str = ""  # mode awaiting intent verification: "subscribe", "unsubscribe" or ""
    requested_at: float = 0  # when the pending request was sent (epoch s)
    lease_expires: float = 0  # end of the verified lease (epoch s), 0 = none
    failures: int = 0  # failed attempts in a row (backoff)
    retry_at: float = 0  # a failed subscription is tried again from then (epoch s)
    last_error: str = ""  # why the last attempt failed
    last_push_at: str = ""  # ISO 8601 UTC of the last accepted push

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> Subscription | None:
        data = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
        if not data.get("token") or not data.get("feed_id"):
            return None
        numbers = {"requested_at", "lease_expires", "retry_at"}
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            text = data.get(f.name, "")
            if f.name in numbers:
                values[f.name] = float(text or 0)
            elif f.name == "failures":
                values[f.name] = int(text or 0)
            else:
                values[f.name] = text
        return cls(**values)  # type: ignore[arg-type]


async def load_subscription(redis: aioredis.Redis, keys: Keys, token: str) -> Subscription | None:
    return Subscription.from_hash(await redis.hgetall(keys.push_subscription(token)))


async def load_subscriptions(redis: aioredis.Redis, keys: Keys) -> list[Subscription]:
    tokens = sorted(t.decode() for t in await redis.smembers(keys.push_subscriptions))
    async with redis.pipeline(transaction=False) as pipe:
        for token in tokens:
            pipe.hgetall(keys.push_subscription(token))
        replies = await pipe.execute()
    subs = [Subscription.from_hash(raw) for raw in replies]
    return [s for s in subs if s is not None]


async def save_subscription(redis: aioredis.Redis, keys: Keys, sub: Subscription) -> None:
    mapping = {k: (v if isinstance(v, str) else repr(v)) for k, v in dataclasses.asdict(sub).items()}
    async with atomic_pipeline(redis) as pipe:
        pipe.hset(keys.push_subscription(sub.token), mapping=mapping)
        pipe.sadd(keys.push_subscriptions, sub.token)
        await pipe.execute()


async def delete_subscription(redis: aioredis.Redis, keys: Keys, token: str) -> None:
    async with atomic_pipeline(redis) as pipe:
        pipe.delete(keys.push_subscription(token))
        pipe.srem(keys.push_subscriptions, token)
        await pipe.execute()


async def mark_feed(redis: aioredis.Redis, keys: Keys, feed_id: str, **fields: str | float) -> None:
    """Set the push fields the feed views show, only while the feed exists (never recreate it)."""
    if await redis.hexists(keys.feed(feed_id), "url"):
        await redis.hset(keys.feed(feed_id), mapping=fields)  # type: ignore[arg-type,unused-ignore]


# KEYS[1] the feed's hash; ARGV[1] now (epoch s, repr). The note, on a pushed feed only.
_POLLED_NEWS = """
local expires = tonumber(redis.call('HGET', KEYS[1], 'push_expires_at') or '')
if expires and expires > tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'polled_news_at', ARGV[1])
end
return 1
"""


def polled_news_call(keys: Keys, feed_id: str, now: float) -> ScriptCall:
    """The script call (text, keys, args) of `note_polled_news`, for a caller that sends it
    with other scripts in one round trip (the worker's, workers/pipeline.py)."""
    return _POLLED_NEWS, [keys.feed(feed_id)], [repr(now)]


async def note_polled_news(redis: aioredis.Redis, keys: Keys, feed_id: str, now: float) -> None:
    """A poll (not a push) delivered new items: note when, on a pushed feed only, so the
    renewal loop can tell a hub that stopped pushing (plan.py, "stale")."""
    await run_script(redis, polled_news_call(keys, feed_id, now))
