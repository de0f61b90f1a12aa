"""The storage sink's loop: stream consumer group -> sink.upsert -> XACK after commit.

Reading as a consumer group makes the sink durable and shareable: entries
are acknowledged only once committed, so a sink killed mid-batch re-reads
its pending entries on restart (`XREADGROUP ... 0`), entries left pending by
a consumer that died are claimed after `sink_claim_idle_seconds`
(XAUTOCLAIM), and several sink processes in one group split the stream.
Upserts are idempotent by id, so re-delivery after a crash writes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ingest.errors import StorageError
from ingest.keys import Keys
from ingest.registry import DEAD_STREAM_MAXLEN
from ingest.sinks.base import Sink

__all__ = ["SinkConsumer", "default_consumer_name"]

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class SinkConsumer:
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
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.sink = sink
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.stored = 0  # items committed by this consumer (for logs and tests)
        self._check_pending = True
        self._next_claim = 0.0

    async def ensure_group(self) -> None:
        """Create the group at the stream's start, so a new sink stores all history."""
        try:
            await self.redis.xgroup_create(self.keys.items_stream, self.group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def _dead(self, entry_id: bytes, error: str, raw: bytes | None) -> None:
        await self.redis.xadd(
            self.keys.dead_stream,
            {"kind": "sink", "entry_id": entry_id, "error": error, "item": raw or b""},
            maxlen=DEAD_STREAM_MAXLEN, approximate=True,
        )

    async def handle(self, entries: Sequence[Entry]) -> int:
        """Store a batch and acknowledge it; unreadable entries are dead-lettered."""
        records: list[dict[str, Any]] = []
        ids: list[bytes] = []
        for entry_id, fields in entries:
            raw = fields.get(b"item")
            try:
                record = orjson.loads(raw or b"")
                if not isinstance(record, dict) or "id" not in record:
                    raise ValueError("not an item record")
                records.append(record)
            except (ValueError, orjson.JSONDecodeError) as e:
                log.error("stream entry %s is not an item: %s", entry_id, e)
                await self._dead(entry_id, f"unreadable item: {e}", raw)
            ids.append(entry_id)
        # Within a batch keep only the newest version of each item.
        newest: dict[str, dict[str, Any]] = {}
        for record in records:
            old = newest.get(record["id"])
            if old is None or int(record.get("version", 0)) >= int(old.get("version", 0)):
                newest[record["id"]] = record
        await self.sink.upsert(list(newest.values()))  # commits before returning
        if ids:
            await self.redis.xack(self.keys.items_stream, self.group, *ids)
        self.stored += len(newest)
        return len(newest)

    async def _read(self, start: str, block: int | None) -> list[Entry]:
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {self.keys.items_stream: start},
            count=self.batch_size, block=block,
        )
        return [(eid, fields) for _, batch in reply or [] for eid, fields in batch if fields]

    async def _claim_stale(self) -> list[Entry]:
        _, claimed, *_ = await self.redis.xautoclaim(
            self.keys.items_stream, self.group, self.consumer,
            min_idle_time=self.claim_idle_ms, start_id="0-0", count=self.batch_size,
        )
        return [(eid, fields) for eid, fields in claimed if fields]

    async def step(self, block: int | None) -> int:
        """One batch: own pending entries first, then stale ones of others, then new ones.

        Own pending entries exist only after a restart or a failed batch, and
        stale ones only when a consumer died, so both are looked for then and
        every claim interval, not on every batch.
        """
        entries: list[Entry] = []
        if self._check_pending:
            entries = await self._read("0", None)
            self._check_pending = bool(entries)
        now = time.monotonic()
        if not entries and now >= self._next_claim:
            self._next_claim = now + max(self.claim_idle_ms / 2000, 1.0)
            entries = await self._claim_stale()
        if not entries:
            entries = await self._read(">", block)
        if not entries:
            return 0
        return await self.handle(entries)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; Redis or storage outages are waited out, not fatal."""
        await self.sink.open()
        delay = 0.5
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    await self.ensure_group()
                    ready = True
                await self.step(self.block_ms)
                delay = 0.5
            except (RedisError, OSError, StorageError) as e:
                ready = ready and not isinstance(e, ResponseError)
                self._check_pending = True  # the failed batch is still pending
                log.warning("sink: %s; retrying in %.1f s", e, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 10.0)
