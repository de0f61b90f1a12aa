"""The dead-letter stream `<ns>:dead`: what could not be processed, and putting it back.

Entries have a `kind` saying which stage gave up, and everything needed to
try again:

    kind        written by                  fields                   retry puts it
    parse       a worker (not a feed)       feed_id, url, error, at  a fetch_once job for `url`
    job         a worker (tries exhausted)  feed_id, url, error, at  a fetch_once job for `url`
    sink        a storage sink group        group, stream, entry_id, on the group's retry
    webhook     a webhook group             item_id, error,          stream `<ns>:retry:<group>`
    subscriber  `ingest subscribe --group`  deliveries, item, at
    group       the stream trimmer (#20)    group, error, at         nothing: a record that a
                                                                     durable group was released

Putting a consumer's entry back on the item stream itself would hand it to
every other consumer a second time; the group's own retry stream (read by
that group beside the item stream, see ingest/deliver/groups.py) reaches only the
consumer that failed. A retried entry leaves the dead-letter stream in the
same transaction, so it is never both retried and still listed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from ingest.deliver.entry import Entry
from ingest.keys import Keys
from ingest.models import FeedSpec
from ingest.redis_conn import atomic_pipeline

__all__ = [
    "DeadEntry",
    "DEAD_STREAM_MAXLEN",
    "RetryAction",
    "dead_letter",
    "dead_letter_entry",
    "dead_letter_group",
    "list_dead",
    "retry_action",
    "retry_dead",
]

# Bounded: input that fails forever must not grow Redis forever.
DEAD_STREAM_MAXLEN = 100_000

_REFETCH_KINDS = ("parse", "job")
_CONSUMER_KINDS = ("sink", "webhook", "subscriber")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class DeadEntry:
    """One dead letter, as `ingest dead` shows it."""

    id: str  # entry id in <ns>:dead
    kind: str  # which stage gave up (table above)
    error: str  # why
    fields: dict[str, str]  # every field, decoded (item JSON included for consumer kinds)

    @staticmethod
    def of(entry_id: bytes, raw: dict[bytes, bytes]) -> DeadEntry:
        fields = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
        kind, error = fields.get("kind", "?"), fields.get("error", "")
        return DeadEntry(entry_id.decode(), kind, error, fields)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.fields}


@dataclass(frozen=True)
class RetryAction:
    """What `ingest dead retry` does with one entry: refetch a URL or requeue for a group."""

    refetch_url: str | None = None  # enqueue a fetch_once job for this URL
    group: str | None = None  # else: put `item` on this group's retry stream
    item: str = ""
    reason: str = ""  # why nothing can be done, when neither of the above


def retry_action(entry: DeadEntry) -> RetryAction:
    """Pure: decide how to put a dead letter back."""
    f = entry.fields
    if entry.kind in _REFETCH_KINDS:
        if f.get("url"):
            return RetryAction(refetch_url=f["url"])
        return RetryAction(reason="no url recorded")
    if entry.kind == "group":
        return RetryAction(reason="a released group is not retried: its consumers read on from where "
                                  "they are, and it is protected again once they do")
    if entry.kind in _CONSUMER_KINDS:
        if f.get("group"):
            return RetryAction(group=f["group"], item=f.get("item", ""))
        return RetryAction(reason="no consumer group recorded")
    return RetryAction(reason=f"unknown kind {entry.kind!r}")


async def dead_letter(
    redis: aioredis.Redis, keys: Keys, kind: str, spec: FeedSpec, error: str, at: str
) -> None:
    """Keep input we could not process, with the reason, for `ingest dead` and humans."""
    async with atomic_pipeline(redis) as pipe:
        pipe.xadd(
            keys.dead_stream,
            {"kind": kind, "feed_id": spec.feed_id, "url": spec.url, "error": error, "at": at},
            maxlen=DEAD_STREAM_MAXLEN,
            approximate=True,
        )
        pipe.hincrby(keys.stats, f"dead_letters:{kind}", 1)  # metrics: dead letters by kind
        await pipe.execute()


async def dead_letter_entry(
    redis: aioredis.Redis, keys: Keys, kind: str, group: str, entry: Entry, error: str,
    deliveries: int,
) -> None:
    """Record a stream entry a consumer gave up on, with everything needed to retry it."""
    item_id = ""
    try:
        item = entry.raw  # the JSON, also of a compressed entry: readable, and retried as JSON
        record = orjson.loads(item)
        if isinstance(record, dict):
            item_id = str(record.get("id", ""))
    except ValueError:  # unreadable (JSON or zstd frame): kept as it was stored
        item = entry.value
    async with atomic_pipeline(redis) as pipe:
        pipe.xadd(
            keys.dead_stream,
            {"kind": kind, "group": group, "stream": entry.stream, "entry_id": entry.id,
             "item_id": item_id, "error": error[:2000], "deliveries": deliveries,
             "item": item, "at": _now_iso()},
            maxlen=DEAD_STREAM_MAXLEN, approximate=True,
        )
        pipe.hincrby(keys.stats, f"{kind}_failures", 1)  # sink_failures, webhook_failures
        pipe.hincrby(keys.stats, f"dead_letters:{kind}", 1)  # metrics: dead letters by kind
        await pipe.execute()


async def dead_letter_group(redis: aioredis.Redis, keys: Keys, group: str, error: str) -> None:
    """Record that a durable group was released from holding the item stream (#20)."""
    async with atomic_pipeline(redis) as pipe:
        pipe.xadd(keys.dead_stream, {"kind": "group", "group": group, "error": error[:2000], "at": _now_iso()},
                  maxlen=DEAD_STREAM_MAXLEN, approximate=True)
        pipe.hincrby(keys.stats, "durable_groups_released", 1)
        pipe.hincrby(keys.stats, "dead_letters:group", 1)
        await pipe.execute()


async def list_dead(
    redis: aioredis.Redis, keys: Keys, count: int, kind: str | None = None,
    ids: Sequence[str] = (),
) -> list[DeadEntry]:
    """Oldest first; `ids` picks entries, else the first `count` (of `kind`, when given)."""
    if ids:
        found = []
        for entry_id in ids:
            rows = await redis.xrange(keys.dead_stream, min=entry_id, max=entry_id)
            found += [DeadEntry.of(eid, fields) for eid, fields in rows]
        return found
    out: list[DeadEntry] = []
    start = "-"
    deadline = time.monotonic() + 30  # bounded even on a huge stream
    while len(out) < count and time.monotonic() < deadline:
        rows = await redis.xrange(keys.dead_stream, min=start, count=500)
        if not rows:
            break
        for eid, fields in rows:
            entry = DeadEntry.of(eid, fields)
            if kind is None or entry.kind == kind:
                out.append(entry)
        start = "(" + rows[-1][0].decode()
    return out[:count]


class _Enqueuer(Protocol):
    async def enqueue_job(self, function: str, *args: Any) -> Any: ...


async def retry_dead(
    redis: aioredis.Redis, keys: Keys, arq: _Enqueuer, entries: Sequence[DeadEntry]
) -> tuple[int, list[tuple[DeadEntry, str]]]:
    """Put entries back; return how many were retried and those that could not be."""
    retried = 0
    skipped: list[tuple[DeadEntry, str]] = []
    for entry in entries:
        action = retry_action(entry)
        if action.refetch_url:
            await arq.enqueue_job("fetch_once", action.refetch_url)
            await redis.xdel(keys.dead_stream, entry.id)
        elif action.group:
            async with atomic_pipeline(redis) as pipe:
                pipe.xadd(keys.retry_stream(action.group), {"item": action.item})
                pipe.xdel(keys.dead_stream, entry.id)
                await pipe.execute()
        else:
            skipped.append((entry, action.reason))
            continue
        retried += 1
    return retried, skipped
