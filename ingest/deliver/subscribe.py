"""`ingest subscribe`: items as they arrive, three ways.

* live (Pub/Sub, the default): what is published while connected; best effort.
  One feed or one tag subscribes to that channel; otherwise the all-items
  channel, filtered here.
* replay (`--from ID|0|$`): XREAD from the stream after ID (`0`: everything
  still in the stream, `$`: only what comes next), then follow it. Entry ids
  are exclusive starting points, so a consumer that remembers the last id it
  printed (`--with-id`) resumes exactly where it stopped.
* durable (`--group G [--consumer C]`): a consumer group (ingest/deliver/groups.py):
  each entry is printed and flushed, then acknowledged; a restarted consumer
  re-reads what it had not acknowledged, and another consumer of the group
  claims the entries of a dead one after `--claim-idle` seconds. Several
  consumers of one group share the items; separate groups each get them all.

Filters (`--feed`, `--tag`, `--lang`, each repeatable) apply to every mode;
within a filter any value matches, and all given filters must match.

Every mode prints the record's JSON, also when the stream stores it as a zstd
frame (`stream_record = "zstd"`, ingest/deliver/streamcodec.py). An entry that
cannot be read is skipped with a warning (replay), or left pending and
dead-lettered like a failed entry (a group).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from ingest.deliver.groups import Entry, GroupConsumer, GroupReader
from ingest.deliver.streamcodec import readable_item
from ingest.keys import Keys
from ingest.redis_conn import is_cluster

__all__ = ["ItemFilter", "consume_group", "live", "live_channels", "replay"]

Emit = Callable[[str | None, bytes], None]  # (stream entry id or None, item JSON)


@dataclass(frozen=True)
class ItemFilter:
    feeds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Pure: does the record pass every filter given?"""
        if self.feeds and record.get("feed_id") not in self.feeds:
            return False
        if self.tags and not any(t in self.tags for t in record.get("tags") or ()):
            return False
        if self.langs:
            lang = str(record.get("language") or "").lower()
            if not any(lang == w.lower() or lang.startswith(w.lower() + "-") for w in self.langs):
                return False
        return True

    def matches_raw(self, raw: bytes) -> bool:
        if not (self.feeds or self.tags or self.langs):
            return True
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False
        return isinstance(record, dict) and self.matches(record)


def live_channels(keys: Keys, f: ItemFilter) -> list[str]:
    """Pure: the narrowest Pub/Sub channel for a filter (the filter still applies after)."""
    if len(f.feeds) == 1 and not f.tags:
        return [keys.feed_channel(f.feeds[0])]
    if len(f.tags) == 1 and not f.feeds:
        return [keys.tag_channel(f.tags[0])]
    return [keys.items_channel]


async def live(redis: aioredis.Redis, channels: Sequence[str], f: ItemFilter, emit: Emit,
               ready: Callable[[], None] = lambda: None) -> None:
    """Pub/Sub until cancelled."""
    if is_cluster(redis):
        await _live_sharded(cast(RedisCluster, redis), channels, f, emit, ready)
        return
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(*channels)
        ready()
        async for message in pubsub.listen():
            if message.get("type") == "message" and f.matches_raw(message["data"]):
                emit(None, message["data"])
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _live_sharded(cluster: RedisCluster, channels: Sequence[str], f: ItemFilter, emit: Emit,
                        ready: Callable[[], None]) -> None:
    """Sharded Pub/Sub (SSUBSCRIBE) on a cluster: one connection to the master of each
    channel's slot. A failover or a moved slot ends the subscription (the connection
    drops, or the server sends `sunsubscribe`): the nodes are looked up again and it
    resumes; what was published meanwhile is missed, as Pub/Sub is best effort."""
    by_node: dict[tuple[str, int], list[str]] = {}
    for channel in channels:
        by_node.setdefault(_master_of(cluster, channel), []).append(channel)
    started = asyncio.Event()
    tasks = [asyncio.create_task(_follow_shard(cluster, address, names, f, emit, started))
             for address, names in by_node.items()]
    try:
        await started.wait()
        ready()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _follow_shard(cluster: RedisCluster, address: tuple[str, int], channels: list[str],
                        f: ItemFilter, emit: Emit, started: asyncio.Event) -> None:
    while True:
        client = aioredis.Redis(host=address[0], port=address[1])
        pubsub = client.pubsub()
        try:
            await pubsub.execute_command("SSUBSCRIBE", *channels)
            while True:
                reply = await pubsub.parse_response(block=True)
                kind = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
                if kind == "ssubscribe":
                    started.set()
                elif kind == "smessage" and f.matches_raw(reply[2]):
                    emit(None, reply[2])
                elif kind == "sunsubscribe":
                    break
        except (RedisError, OSError):
            await asyncio.sleep(1.0)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
        with contextlib.suppress(RedisError, OSError):
            await cluster.initialize()  # the slot map after a failover or a move
            address = _master_of(cluster, channels[0])


def _master_of(cluster: RedisCluster, channel: str) -> tuple[str, int]:
    node = cluster.get_node_from_key(channel)
    if node is None:
        raise RedisError(f"no master holds the slot of {channel} now")
    return str(node.host), int(node.port)


async def replay(
    redis: aioredis.Redis, keys: Keys, start: str, f: ItemFilter, emit: Emit, *,
    follow: bool = True, block_ms: int = 5000, batch: int = 500,
) -> str:
    """Entries after `start`, then (with follow) new ones as they come; returns the last id."""
    last = start
    if start == "$":  # resolve once, so nothing arriving between reads is skipped
        info = await redis.xinfo_stream(keys.items_stream) if await redis.exists(
            keys.items_stream) else None
        last = info["last-generated-id"].decode() if info else "0"
    while True:
        reply = await redis.xread({keys.items_stream: last}, count=batch,
                                  block=block_ms if follow else None)
        entries = [(eid, fields) for _, rows in reply or [] for eid, fields in rows]
        if not entries and not follow:
            return last
        for eid, fields in entries:
            last = eid.decode()
            raw = readable_item(last, fields)
            if raw is not None and f.matches_raw(raw):
                emit(last, raw)


async def consume_group(
    redis: aioredis.Redis, keys: Keys, group: str, consumer: str, f: ItemFilter, emit: Emit, *,
    start: str = "$", claim_idle_ms: int = 60_000, max_attempts: int = 5, follow: bool = True,
    block_ms: int = 5000, stop: asyncio.Event | None = None,
) -> int:
    """Print and acknowledge the group's entries; returns how many were read."""

    async def handle(entries: Sequence[Entry]) -> Mapping[Entry, str]:
        failed: dict[Entry, str] = {}
        for entry in entries:
            try:
                raw = entry.raw
            except ValueError as e:  # stays pending; dead-lettered after max_attempts
                failed[entry] = str(e)
                continue
            if f.matches_raw(raw):
                emit(entry.id.decode(), raw)  # raises (not acked) if output is gone
        return failed

    reader = GroupReader(redis, keys, group=group, consumer=consumer, batch_size=100,
                         claim_idle_ms=claim_idle_ms, start_id=start)
    loop = GroupConsumer(reader, handle, kind="subscriber", max_attempts=max_attempts,
                         block_ms=block_ms)
    await reader.ensure_groups()
    total = 0
    idle_rounds = 0
    stop = stop or asyncio.Event()
    while not stop.is_set():
        got = await loop.step(block_ms if follow else None)
        total += got
        idle_rounds = 0 if got else idle_rounds + 1
        if not follow and not got:
            if idle_rounds >= 2:  # caught up: nothing new, own pending or claimable
                return total
            reader.check_pending = True
            reader.claim_now()
    return total
