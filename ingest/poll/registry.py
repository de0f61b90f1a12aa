"""The feed registry in Redis: add, find, list, remove, enable; record fetch outcomes.

Per feed a hash `<ns>:feed:<feed_id>` (fields: see schedule.FeedState), the
set `<ns>:feeds` of all ids, the index `<ns>:feed_urls` (canonical URL ->
id, so a feed is found by any spelling of its URL and keeps its id when it
moves), and its entry in the schedule `<ns>:schedule` while enabled.
A feed's id is the hash of the canonical URL it was first added with.

Failures are counted in `<ns>:stats`; input that could not be processed
goes to the dead-letter stream `<ns>:dead` with the reason.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from ingest.deliver.events import publish_events
from ingest.keys import Keys
from ingest.models import DeliveryResult, FeedSpec, feed_id_for_url
from ingest.poll.schedule import FeedState
from ingest.redis_conn import ScriptCall, atomic_pipeline, run_script
from ingest.urls import canonical_url

__all__ = [
    "add_feed",
    "add_feeds",
    "enable_feed",
    "feed_spec_for_url",
    "find_feed_id",
    "list_feeds",
    "load_feed",
    "move_feed",
    "record_failure",
    "record_success",
    "remove_feed",
    "success_call",
]

# KEYS: the feed's hash; ARGV: new items, field/value pairs. An unregistered feed
# (`ingest enqueue` of any URL) has no hash with a url, and gets none.
_RECORD_SUCCESS = """
if redis.call('HEXISTS', KEYS[1], 'url') == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  redis.call('HINCRBY', KEYS[1], 'items', ARGV[1])
end
return 1
"""


def _decode(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def find_feed_id(redis: aioredis.Redis, keys: Keys, url_or_id: str) -> str | None:
    """A registered feed's id from its id or any spelling of its URL."""
    if await redis.sismember(keys.feeds, url_or_id):
        return url_or_id
    canonical = canonical_url(url_or_id)
    if canonical:
        found = await redis.hget(keys.feed_urls, canonical)
        if found:
            return _decode(found)
    return None


async def feed_spec_for_url(redis: aioredis.Redis, keys: Keys, url: str) -> FeedSpec:
    """The feed a URL belongs to: the registered one, else an id from the canonical URL."""
    feed_id = await find_feed_id(redis, keys, url) or feed_id_for_url(canonical_url(url) or url)
    title, tags, full_text = await redis.hmget(keys.feed(feed_id), ["title", "tags", "full_text"])
    return FeedSpec(feed_id=feed_id, url=url, title=_decode(title),
                    tags=tuple(t for t in _decode(tags).split(",") if t), full_text=_decode(full_text))


async def add_feed(
    redis: aioredis.Redis, keys: Keys, url: str, *, interval: float = 0,
    tags: tuple[str, ...] = (), now: float | None = None, full_text: str = "",
) -> tuple[str, bool]:
    """Register a feed, due at once; returns (feed_id, created). Re-adding re-enables.

    `full_text`: the feed's article-page mode (off/auto/always; "" = the setting) (#15).
    """
    now = time.time() if now is None else now
    existing = await find_feed_id(redis, keys, url)
    if existing:
        changes: dict[str, Any] = {}
        if interval:
            changes["interval"] = interval
        if tags:
            changes["tags"] = ",".join(tags)
        if full_text:
            changes["full_text"] = full_text
        if changes:
            await redis.hset(keys.feed(existing), mapping=changes)
        await enable_feed(redis, keys, existing, now=now)
        return existing, False
    canonical = canonical_url(url) or url
    feed_id = feed_id_for_url(canonical)
    async with atomic_pipeline(redis) as pipe:
        pipe.hset(keys.feed(feed_id), mapping={
            "url": url, "interval": interval, "tags": ",".join(tags), "added_at": _now_iso(),
            "consecutive_errors": 0, "disabled_reason": "", "full_text": full_text,
        })
        pipe.sadd(keys.feeds, feed_id)
        pipe.hset(keys.feed_urls, canonical, feed_id)
        pipe.zadd(keys.schedule, {feed_id: int(now * 1000)})
        await pipe.execute()
    await publish_events(redis, keys, [{"event": "added", "feed_id": feed_id, "url": url, "at": _now_iso()}])
    return feed_id, True


async def add_feeds(
    redis: aioredis.Redis, keys: Keys, feeds: list[tuple[str, str, float, tuple[str, ...]]],
    *, now: float | None = None, chunk: int = 1000,
) -> list[bool]:
    """Register many feeds (url, title, interval, tags) as add_feed does, a chunk per round trip.

    `ingest import` of 100,000 feeds one add_feed at a time took minutes (five
    round trips each); here a chunk costs two: one lookup of every URL, one
    transaction writing the new feeds (#9). A feed already registered, or
    listed twice in `feeds`, goes through add_feed (re-enabled, interval and
    tags updated; its title is left alone). Returns, per feed, whether it was created.
    """
    now = time.time() if now is None else now
    created: list[bool] = []
    for start in range(0, len(feeds), chunk):
        part = feeds[start:start + chunk]
        canonicals = [canonical_url(url) or url for url, _, _, _ in part]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.smismember(keys.feeds, [url for url, _, _, _ in part])
            pipe.hmget(keys.feed_urls, canonicals)
            is_id, known = await pipe.execute()
        seen: set[str] = set()
        fresh: list[tuple[str, str, str, float, tuple[str, ...]]] = []
        again: list[int] = []
        for i, ((url, title, interval, tags), canonical) in enumerate(zip(part, canonicals, strict=True)):
            if is_id[i] or known[i] or canonical in seen:
                again.append(i)
                continue
            seen.add(canonical)
            fresh.append((url, canonical, title, interval, tags))
        added_at = _now_iso()
        async with atomic_pipeline(redis) as pipe:
            for url, canonical, title, interval, tags in fresh:
                feed_id = feed_id_for_url(canonical)
                fields: dict[str, Any] = {"url": url, "interval": interval, "tags": ",".join(tags),
                                          "added_at": added_at, "consecutive_errors": 0, "disabled_reason": ""}
                if title:
                    fields["title"] = title
                pipe.hset(keys.feed(feed_id), mapping=fields)
                pipe.sadd(keys.feeds, feed_id)
                pipe.hset(keys.feed_urls, canonical, feed_id)
                pipe.zadd(keys.schedule, {feed_id: int(now * 1000)})
            await pipe.execute()
        await publish_events(redis, keys, [{"event": "added", "feed_id": feed_id_for_url(canonical), "url": url,
                                            "at": added_at} for url, canonical, _, _, _ in fresh])
        outcome = [True] * len(part)
        for i in again:
            url, _, interval, tags = part[i]
            _, outcome[i] = await add_feed(redis, keys, url, interval=interval, tags=tags, now=now)
        created += outcome
    return created


async def enable_feed(redis: aioredis.Redis, keys: Keys, feed_id: str, now: float | None = None) -> bool:
    """Clear a disabled feed's reason and errors; it is due at once. False if it was enabled."""
    now = time.time() if now is None else now
    reason = await redis.hget(keys.feed(feed_id), "disabled_reason")
    if not reason:
        return False
    async with atomic_pipeline(redis) as pipe:
        pipe.hset(keys.feed(feed_id), mapping={"disabled_reason": "", "consecutive_errors": 0})
        pipe.zadd(keys.schedule, {feed_id: int(now * 1000)})
        await pipe.execute()
    url = _decode(await redis.hget(keys.feed(feed_id), "url"))
    await publish_events(redis, keys, [{"event": "enabled", "feed_id": feed_id, "url": url, "at": _now_iso()}])
    return True


async def remove_feed(redis: aioredis.Redis, keys: Keys, url_or_id: str) -> str | None:
    """Forget a feed (its delivered items stay); returns its id, or None if unknown."""
    feed_id = await find_feed_id(redis, keys, url_or_id)
    if feed_id is None:
        return None
    url = _decode(await redis.hget(keys.feed(feed_id), "url"))
    async with atomic_pipeline(redis) as pipe:
        pipe.delete(keys.feed(feed_id))
        pipe.srem(keys.feeds, feed_id)
        pipe.zrem(keys.schedule, feed_id)
        for spelling in {canonical_url(url), canonical_url(url_or_id)} - {None}:
            pipe.hdel(keys.feed_urls, spelling)
        await pipe.execute()
    await publish_events(redis, keys, [{"event": "removed", "feed_id": feed_id, "url": url, "at": _now_iso()}])
    return feed_id


async def move_feed(redis: aioredis.Redis, keys: Keys, feed_id: str, new_url: str) -> None:
    """After a trusted permanent redirect: the new URL finds the same feed id."""
    canonical = canonical_url(new_url)
    if canonical:
        await redis.hset(keys.feed_urls, canonical, feed_id)


async def load_feed(redis: aioredis.Redis, keys: Keys, feed_id: str) -> FeedState | None:
    raw = await redis.hgetall(keys.feed(feed_id))
    if not raw or b"url" not in raw:
        return None
    return FeedState.from_hash(feed_id, raw)


async def list_feeds(redis: aioredis.Redis, keys: Keys) -> list[tuple[FeedState, float | None]]:
    """Every registered feed with its next due time (epoch s; None when disabled)."""
    ids = sorted(_decode(i) for i in await redis.smembers(keys.feeds))
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for feed_id in ids:
            pipe.hgetall(keys.feed(feed_id))
            pipe.zscore(keys.schedule, feed_id)
        replies = await pipe.execute()
    out: list[tuple[FeedState, float | None]] = []
    for feed_id, raw, score in zip(ids, replies[::2], replies[1::2], strict=True):
        if raw:
            out.append((FeedState.from_hash(feed_id, raw), None if score is None else score / 1000))
    return out


def success_call(keys: Keys, result: DeliveryResult, title: str, fetched_at: str, status: int) -> ScriptCall:
    """The feed's outcome after a document was processed (title, the schedule hints from
    its items, the error count reset), as a script call (text, keys, args) for a caller
    that sends it in a round trip it makes anyway (workers/pipeline.py, decision 159).

    `fetches_ok` is not in it: it lives in `<ns>:stats`, another slot on a cluster, and
    that caller counts it with the document's counters (ingest.counters.processing_call)."""
    # The body parsed: whatever failed before is over (the poller leaves the
    # error count to us whenever it hands a new body over).
    fields: dict[str, Any] = {"title": title, "last_fetch_at": fetched_at, "last_status": status,
                              "consecutive_errors": 0, "last_error": ""}
    if result.publish_interval is not None:
        fields["adaptive_interval"] = round(result.publish_interval, 1)
    if result.feed_hint is not None:
        fields["feed_min_interval"] = round(result.feed_hint, 1)
    args: list[Any] = [result.new]
    for name, value in fields.items():
        args += [name, value]
    # The check and the writes in one script (#9), on the feed's hash alone (#13).
    return _RECORD_SUCCESS, [keys.feed(result.feed_id)], args


async def record_success(
    redis: aioredis.Redis, keys: Keys, result: DeliveryResult, title: str, fetched_at: str, status: int
) -> None:
    """After a document was processed: title, counters and the schedule hints from its items,
    in round trips of their own (`success_call` and `fetches_ok`, both in flight at once).

    For a caller without a round trip to join; a worker's job sends the same call with the
    document's last one (`process_document(note_success=True)`)."""
    await asyncio.gather(run_script(redis, success_call(keys, result, title, fetched_at, status)),
                         redis.hincrby(keys.stats, "fetches_ok", 1))  # type: ignore[arg-type]


async def record_failure(
    redis: aioredis.Redis, keys: Keys, spec: FeedSpec, counter: str, error: str, at: str,
    *, disable_after: int | None = None,
) -> None:
    """Count the failure; note it on the feed only when the feed is registered.

    An unknown URL that fails (`ingest enqueue` of a typo) leaves no feed
    record behind: nothing half-written. With `disable_after` (a body that is
    not a feed) the failure also counts against the feed: its body hash is
    forgotten so the next poll tries again, and after that many failures in a
    row the feed is disabled with the error as its reason, like any other.
    """
    key = keys.feed(spec.feed_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.stats, counter, 1)
        pipe.sismember(keys.feeds, spec.feed_id)
        _, registered = await pipe.execute()
    if not registered:
        return
    if disable_after is None:
        await redis.hset(key, mapping={"last_error": error, "last_fetch_at": at})
        return
    async with atomic_pipeline(redis) as pipe:
        pipe.hset(key, mapping={"last_error": error, "last_fetch_at": at, "body_hash": ""})
        pipe.hincrby(key, "consecutive_errors", 1)
        _, errors = await pipe.execute()
    if errors >= disable_after:
        reason = f"{errors} consecutive failures; last: {error}"
        async with atomic_pipeline(redis) as pipe:
            pipe.hset(key, "disabled_reason", reason)
            pipe.zrem(keys.schedule, spec.feed_id)
            await pipe.execute()
        await publish_events(redis, keys, [{"event": "disabled", "feed_id": spec.feed_id,
                                            "url": spec.url, "at": at, "reason": reason}])
