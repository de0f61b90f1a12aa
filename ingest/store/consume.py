"""The storage sink's consumer: item stream (consumer group) -> sink.upsert -> XACK after commit.

Reading as a consumer group (ingest/deliver/groups.py) makes the sink durable and
shareable: entries are acknowledged only once committed, so a sink killed
mid-batch re-reads its pending entries on restart, entries left pending by a
consumer that died are claimed after `sink_claim_idle_seconds`, and several
sink processes in one group split the stream between them. Upserts are
idempotent by id and never replace a newer version, so an entry delivered
twice after a crash writes nothing twice.

A batch is committed as one transaction. If the backend rejects a record
(bad data, not an outage), the batch is retried record by record so one bad
record cannot hold back the others; the bad one stays pending and goes to
the dead-letter stream after `sink_max_attempts` deliveries. An outage
(database or Redis unreachable) fails the whole batch, which stays pending
and is retried with backoff, never dead-lettered; each such failure is
counted (`storage_errors` in <ns>:stats, when Redis answers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ingest.deliver.groups import Entry, GroupConsumer, GroupReader, default_consumer_name
from ingest.errors import StorageError
from ingest.keys import Keys
from ingest.store.base import RecordRejected, Sink

__all__ = ["SinkConsumer", "decode_record", "default_consumer_name", "newest_per_item"]

log = logging.getLogger(__name__)

_REQUIRED = ("id", "version", "feed_id", "fetched_at", "content_hash")


def decode_record(raw: bytes) -> dict[str, Any]:
    """Pure: the item record of a stream entry, or ValueError saying what is wrong with it."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"unreadable item: {e}") from e
    if not isinstance(record, dict):
        raise ValueError("unreadable item: not a JSON object")
    missing = [k for k in _REQUIRED if record.get(k) in (None, "")]
    if missing:
        raise ValueError(f"unreadable item: missing {', '.join(missing)}")
    if not isinstance(record["version"], int) or isinstance(record["version"], bool):
        raise ValueError("unreadable item: version is not an integer")
    return record


def newest_per_item(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pure: within one batch keep only the newest version of each item (one row write each)."""
    newest: dict[str, dict[str, Any]] = {}
    for record in records:
        old = newest.get(record["id"])
        if old is None or record["version"] >= old["version"]:
            newest[record["id"]] = record
    return list(newest.values())


class SinkConsumer:
    """One sink process's membership in the storage group."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        sink: Sink,
        *,
        group: str,
        consumer: str,
        batch_size: int,
        block_ms: int,
        claim_idle_ms: int,
        max_attempts: int = 5,
    ) -> None:
        self.sink = sink
        self.redis = redis
        self.keys = keys
        self.storage_errors = 0  # outages seen by this consumer (each batch retried later)
        self.reader = GroupReader(redis, keys, group=group, consumer=consumer,
                                  batch_size=batch_size, claim_idle_ms=claim_idle_ms)
        self.loop = GroupConsumer(self.reader, self.handle, kind="sink",
                                  max_attempts=max_attempts, block_ms=block_ms)
        self.stored = 0  # item rows written by this consumer (for logs and tests)

    async def ensure_group(self) -> None:
        """Create the group at the stream's start, so a new sink stores all history."""
        await self.reader.ensure_groups()

    async def handle(self, entries: Sequence[Entry]) -> Mapping[Entry, str]:
        """Store a batch (one commit); return the entries that could not be stored."""
        failed: dict[Entry, str] = {}
        readable: list[tuple[Entry, dict[str, Any]]] = []
        for entry in entries:
            try:
                readable.append((entry, decode_record(entry.raw)))
            except ValueError as e:
                failed[entry] = str(e)
        rows = newest_per_item([record for _, record in readable])
        try:
            await self.sink.upsert(rows)  # commits before returning
            self.stored += len(rows)
        except RecordRejected:
            rejected = await self._one_by_one(rows)
            for entry, record in readable:
                if record["id"] in rejected:
                    failed[entry] = rejected[record["id"]]
        except StorageError:
            await self._count_outage()
            raise  # the group loop waits and retries; the batch stays pending
        return failed

    async def _count_outage(self) -> None:
        self.storage_errors += 1
        try:
            await self.redis.hincrby(self.keys.stats, "storage_errors", 1)
        except (RedisError, OSError) as e:
            log.warning("storage_errors not counted: Redis: %s", e)

    async def _one_by_one(self, rows: Sequence[dict[str, Any]]) -> dict[str, str]:
        """After a rejected batch: store each row alone; return the ids rejected, with why."""
        rejected: dict[str, str] = {}
        for row in rows:
            try:
                await self.sink.upsert([row])
                self.stored += 1
            except RecordRejected as e:
                rejected[row["id"]] = str(e)
        return rejected

    async def step(self, block: int | None) -> int:
        """One batch; return the item rows it wrote (0 when the stream had nothing)."""
        before = self.stored
        await self.loop.step(block)
        return self.stored - before

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; outages are waited out (see GroupConsumer.run)."""
        await self.sink.open()
        await self.loop.run(stop)
