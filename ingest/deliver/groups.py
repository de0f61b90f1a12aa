"""Durable consumption of the item stream by a Redis consumer group: the shared loop.

The storage sinks, each webhook and `ingest subscribe --group` all consume the
same way, so the rules live here once:

* read, in this order: this consumer's own pending entries (after a restart
  or a failed batch), entries another consumer left pending longer than the
  claim idle time (it died: XAUTOCLAIM), then new entries (`>`);
* hand a batch to a handler; acknowledge (XACK) only what the handler
  finished, after it finished (for a sink: after the commit);
* an entry the handler reports as failed stays pending and is read again;
  once it has been delivered `max_attempts` times (Redis counts deliveries
  per pending entry, so the count survives restarts) it is moved to the
  dead-letter stream with its error and acknowledged;
* an exception from the handler (storage or network down) fails the whole
  batch without counting against entries: it stays pending and is retried.

A group reads the item stream and its own retry stream `<ns>:retry:<group>`,
where `ingest dead retry` puts entries back for this group alone, so a retry
never re-delivers an item to the other consumers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ingest.deliver.dead import dead_letter_entry
from ingest.deliver.entry import Entry
from ingest.errors import IngestError
from ingest.keys import Keys

__all__ = [
    "Entry",
    "GroupConsumer",
    "GroupReader",
    "Handler",
    "default_consumer_name",
    "should_dead_letter",
    "should_prune",
]

log = logging.getLogger(__name__)


def default_consumer_name() -> str:
    """Unique per process and machine, so a restarted process is a new consumer."""
    return f"{socket.gethostname()}-{os.getpid()}"


# A handler gets a batch and returns the entries it could not process, with why.
# Raising instead means "nothing of this batch is done" (an outage), not counted.
Handler = Callable[[Sequence[Entry]], Awaitable[Mapping[Entry, str]]]


def should_dead_letter(deliveries: int, max_attempts: int) -> bool:
    """An entry that failed on its `max_attempts`-th delivery is given up on."""
    return deliveries >= max_attempts


# Consumers are named per process, so every restart adds one to the group.
PRUNE_IDLE_MS = 24 * 3600 * 1000


def should_prune(name: str, me: str, pending: int, idle_ms: int) -> bool:
    """Pure: forget a consumer that holds nothing and has not read for a day.

    A consumer with no pending entries owns nothing, so deleting it loses
    nothing; it only keeps XINFO CONSUMERS from growing with every restart.
    """
    return name != me and pending == 0 and idle_ms >= PRUNE_IDLE_MS


class GroupReader:
    """Reads one consumer group on the item stream and the group's retry stream."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        group: str,
        consumer: str,
        batch_size: int,
        claim_idle_ms: int,
        start_id: str = "0",
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.start_id = start_id  # where a new group starts on the item stream: "0", "$" or an id
        self.streams = [keys.items_stream, keys.retry_stream(group)]
        self.check_pending = True
        self._next_claim = 0.0

    async def ensure_groups(self) -> None:
        """Create the group (idempotent); on the retry stream it always starts at 0."""
        for stream, start in zip(self.streams, (self.start_id, "0"), strict=True):
            try:
                await self.redis.xgroup_create(stream, self.group, id=start, mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
            for c in await self.redis.xinfo_consumers(stream, self.group):
                name = c["name"].decode() if isinstance(c["name"], bytes) else str(c["name"])
                if should_prune(name, self.consumer, int(c["pending"]), int(c["idle"])):
                    await self.redis.xgroup_delconsumer(stream, self.group, name)

    async def _read(self, start: str, block: int | None) -> list[Entry]:
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {s: start for s in self.streams},
            count=self.batch_size, block=block,
        )
        entries: list[Entry] = []
        for name, batch in reply or []:
            stream = name.decode() if isinstance(name, bytes) else name
            gone = [eid for eid, fields in batch if not fields]
            if gone:  # pending, but trimmed from the stream meanwhile: nothing left to do
                log.warning("%s: %d pending entries were trimmed from %s before they were "
                            "acknowledged (a plain group past stream_maxlen, a released durable "
                            "group, or a cap: docs/guarantees.md)", self.group, len(gone), stream)
                await self.redis.xack(stream, self.group, *gone)
            entries += [Entry(stream, eid, fields) for eid, fields in batch if fields]
        return entries

    async def _claim_stale(self) -> list[Entry]:
        entries: list[Entry] = []
        for stream in self.streams:
            _, claimed, *_ = await self.redis.xautoclaim(
                stream, self.group, self.consumer,
                min_idle_time=self.claim_idle_ms, start_id="0-0", count=self.batch_size,
            )
            entries += [Entry(stream, eid, fields) for eid, fields in claimed if fields]
        return entries

    def claim_now(self) -> None:
        """Look for stale entries of other consumers on the next read."""
        self._next_claim = 0.0

    async def read(self, block: int | None) -> list[Entry]:
        """One batch: own pending first, then stale ones of others, then new ones.

        Own pending entries exist only after a restart or a failure, and stale
        ones only when a consumer died, so they are looked for then and every
        half claim interval, not on every batch.
        """
        entries: list[Entry] = []
        if self.check_pending:
            entries = await self._read("0", None)
            self.check_pending = bool(entries)
        now = time.monotonic()
        if not entries and now >= self._next_claim:
            self._next_claim = now + max(self.claim_idle_ms / 2000, 0.2)
            entries = await self._claim_stale()
        if not entries:
            entries = await self._read(">", block)
        return entries

    async def ack(self, entries: Sequence[Entry]) -> None:
        by_stream: dict[str, list[bytes]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        for stream, ids in by_stream.items():
            await self.redis.xack(stream, self.group, *ids)

    async def deliveries(self, entry: Entry) -> int:
        """How often the group has delivered this pending entry (Redis keeps the count)."""
        rows = await self.redis.xpending_range(
            entry.stream, self.group, min=entry.id, max=entry.id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1


class GroupConsumer:
    """The loop: read a batch, let the handler work, ack, dead-letter what keeps failing."""

    def __init__(
        self, reader: GroupReader, handler: Handler, *, kind: str, max_attempts: int, block_ms: int
    ) -> None:
        self.reader = reader
        self.handler = handler
        self.kind = kind  # dead-letter kind: "sink", "webhook", "subscriber"
        self.max_attempts = max_attempts
        self.block_ms = block_ms
        self.done = 0  # entries acknowledged as processed (for logs and tests)
        self.dead = 0  # entries moved to the dead-letter stream

    async def step(self, block: int | None) -> int:
        """Process one batch; return how many entries were read."""
        entries = await self.reader.read(block)
        if not entries:
            return 0
        try:
            failed = await self.handler(entries)
        except BaseException:
            self.reader.check_pending = True  # the batch is still pending
            raise
        given_up: list[Entry] = []
        for entry, error in failed.items():
            deliveries = await self.reader.deliveries(entry)
            if should_dead_letter(deliveries, self.max_attempts):
                log.error("%s %s: entry %s failed %d times, dead-lettered: %s", self.kind,
                          self.reader.group, entry.id.decode(), deliveries, error)
                await dead_letter_entry(self.reader.redis, self.reader.keys, self.kind,
                                        self.reader.group, entry, error, deliveries)
                given_up.append(entry)
            else:
                log.warning("%s %s: entry %s failed (delivery %d of %d): %s", self.kind,
                            self.reader.group, entry.id.decode(), deliveries, self.max_attempts,
                            error)
        if failed:
            self.reader.check_pending = True
        finished = [e for e in entries if e not in failed]
        await self.reader.ack(finished + given_up)
        self.done += len(finished)
        self.dead += len(given_up)
        return len(entries)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; Redis or backend outages are waited out, not fatal."""
        delay = 0.5
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    await self.reader.ensure_groups()
                    ready = True
                await self.step(self.block_ms)
                delay = 0.5
            except (RedisError, OSError, IngestError) as e:
                ready = ready and not isinstance(e, ResponseError)  # NOGROUP: stream was deleted
                self.reader.check_pending = True
                log.warning("%s %s: %s; retrying in %.1f s", self.kind, self.reader.group, e, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 10.0)
