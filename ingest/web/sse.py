"""`GET /api/v1/items/stream`: live items as Server-Sent Events, resumable without gap or repeat.

Each event's `id` is the item's entry id in the durable stream `<ns>:items`.
A client that reconnects sends the last id it saw (`Last-Event-ID`, which
browsers' EventSource send by themselves, or `?from=`), and the server reads
the stream after that id: first what was missed (replay), then new entries
as they come, in one XREAD loop, so nothing falls between replay and live
and nothing is sent twice. Without an id the stream starts at its end (only
new items); `from=0` replays everything the stream still holds.

The filters are those of `ingest subscribe` (feed, tag, lang, repeatable).
Events carry the record's JSON, also when the stream stores it compressed
(`stream_record = "zstd"`); an entry that cannot be read is skipped, logged.
A comment line goes out every `heartbeat` seconds of silence so proxies keep
the connection open. Slow clients are bounded: a write that cannot complete
in SLOW_CLIENT_SECONDS ends the response (the client resumes from its last
id). A client whose position was trimmed off the stream (it was away, or
read slower than items came, longer than `stream_maxlen` entries) gets an
`overrun` event naming the oldest entry still kept before the items resume;
it is never silently skipped ahead.
"""

from __future__ import annotations

import asyncio
import logging
import re

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from ingest.deliver.streamcodec import readable_item
from ingest.deliver.subscribe import ItemFilter
from ingest.keys import Keys
from ingest.web.app import SERVICES
from ingest.web.errors import ApiError, bad_input
from ingest.web.params import int_param, str_list_param

__all__ = ["MAX_STREAMS", "SLOW_CLIENT_SECONDS", "compare_ids", "format_event", "routes", "trimmed_since"]

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
SLOW_CLIENT_SECONDS = 30.0
MAX_STREAMS = 500  # each open stream holds one Redis connection blocked in XREAD
_ID = re.compile(r"^\d+(-\d+)?$")


def format_event(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """Pure: one SSE event; `data` is one line of JSON (orjson never writes newlines)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\n".encode() + b"data: " + data + b"\n\n"


def _parts(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def compare_ids(a: str, b: str) -> int:
    """Pure: -1, 0 or 1 as stream entry id `a` is before, equal to or after `b`."""
    pa, pb = _parts(a), _parts(b)
    return (pa > pb) - (pa < pb)


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


async def trimmed_since(redis: aioredis.Redis, keys: Keys, last: str) -> str | None:
    """The oldest id still kept, if entries after `last` may have been trimmed; else None.

    Redis 7 records the newest deleted id, which makes the answer exact; on
    older servers a position before the first kept entry counts as a gap
    (it may be a false alarm, never a silent loss).
    """
    if _parts(last) == (0, 0) or not await redis.exists(keys.items_stream):
        return None
    info = await redis.xinfo_stream(keys.items_stream)
    first = info.get("first-entry")
    first_id = _text(first[0]) if first else _text(info.get("last-generated-id"))
    if first_id is None or compare_ids(last, first_id) >= 0:
        return None
    deleted = _text(info.get("max-deleted-entry-id"))
    if deleted is not None and compare_ids(deleted, last) <= 0:
        return None
    return first_id


async def _start_id(redis: aioredis.Redis, keys: Keys, requested: str) -> str:
    if requested != "$":
        return requested if "-" in requested else f"{requested}-0"
    if not await redis.exists(keys.items_stream):
        return "0-0"
    info = await redis.xinfo_stream(keys.items_stream)
    return _text(info.get("last-generated-id")) or "0-0"


class _Stream:
    """One client's event stream: writes bounded in time, ids tracked."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response

    async def send(self, chunk: bytes) -> None:
        await asyncio.wait_for(self.response.write(chunk), SLOW_CLIENT_SECONDS)


@routes.get("/api/v1/items/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    redis, keys = services.redis, services.keys
    f = ItemFilter(feeds=str_list_param(request, "feed"), tags=str_list_param(request, "tag"),
                   langs=str_list_param(request, "lang"))
    requested = (request.headers.get("Last-Event-ID") or request.query.get("from") or "$").strip()
    if requested != "$" and not _ID.match(requested):
        raise bad_input("Last-Event-ID" if "Last-Event-ID" in request.headers else "from",
                        "must be a stream entry id (1700000000000-0), 0 or $")
    heartbeat = int_param(request, "heartbeat", 15, 1, 300)
    if services.live_streams >= MAX_STREAMS:
        raise ApiError(503, f"too many live streams open ({MAX_STREAMS}); try again later")
    last = await _start_id(redis, keys, requested)  # before prepare: Redis down is a 503
    services.live_streams += 1
    try:
        return await _follow(request, f, heartbeat, last)
    finally:
        services.live_streams -= 1


async def _follow(request: web.Request, f: ItemFilter, heartbeat: int, last: str) -> web.StreamResponse:
    services = request.app[SERVICES]
    redis, keys = services.redis, services.keys
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    out = _Stream(response)
    await out.send(b"retry: 1000\n\n")
    try:
        last = told = await _check_trim(out, redis, keys, last)
        while True:
            reply = await redis.xread({keys.items_stream: last}, count=200, block=heartbeat * 1000)
            entries = [(eid, fields) for _, rows in reply or [] for eid, fields in rows]
            if not entries:
                await out.send(b": keep-alive\n\n")
                continue
            if last != told:  # (just told: `last` sits right before the oldest kept entry)
                last = told = await _check_trim(out, redis, keys, last)
            for eid, fields in entries:
                entry_id = eid.decode()
                if compare_ids(entry_id, last) <= 0:
                    continue
                last = entry_id
                raw = readable_item(entry_id, fields)
                if raw is not None and f.matches_raw(raw):
                    await out.send(format_event("item", raw, entry_id))
    except (ConnectionResetError, TimeoutError):
        pass  # the client left or stopped reading; it resumes with Last-Event-ID
    except (RedisError, OSError) as e:
        # Headers are sent: end the stream; the client resumes from its last id.
        log.warning("item stream: Redis failed (%s); closing, the client will resume", e)
    return response


async def _check_trim(out: _Stream, redis: aioredis.Redis, keys: Keys, last: str) -> str:
    """Tell the client when its position fell off the stream; continue from the oldest kept."""
    oldest = await trimmed_since(redis, keys, last)
    if oldest is None:
        return last
    message = {"error": "entries after your last event id were trimmed from the stream before "
                        "they could be sent; read them from the item store (GET /api/v1/items)",
               "last_event_id": last, "resume_from": oldest}
    await out.send(format_event("overrun", orjson.dumps(message)))
    ms, seq = _parts(oldest)
    # Resume *at* the oldest kept entry (XREAD is exclusive: start just before it).
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-18446744073709551615"
