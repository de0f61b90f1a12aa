"""Health, enqueue, dead letters, stats and "poll everything now": the operator's routes."""

from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web
from redis.exceptions import RedisError

from ingest.deliver.dead import list_dead, retry_dead
from ingest.deliver.trim import read_busy
from ingest.errors import IngestError, URLRefused
from ingest.poll.enqueue import enqueue_fetch, job_outcome
from ingest.poll.manage import poll_now
from ingest.stats import read_snapshot
from ingest.store import ItemQuery
from ingest.web.app import SERVICES
from ingest.web.errors import ApiError, bad_input, json_response
from ingest.web.params import int_param, json_body, list_field

__all__ = ["DEAD_KINDS", "MAX_ENQUEUE", "routes"]

routes = web.RouteTableDef()
_ENTRY_ID = re.compile(r"^\d+-\d+$")
DEAD_KINDS = ("parse", "job", "sink", "webhook", "subscriber", "group")
MAX_ENQUEUE = 100


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is alive (no dependency is consulted)."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Redis and the store answer and the service takes work; 503 with the reason when not
    (backpressure: the item stream is near its cap, #20)."""
    services = request.app[SERVICES]
    problems: dict[str, str] = {}
    try:
        await asyncio.wait_for(services.redis.ping(), 3)
    except (RedisError, OSError, TimeoutError) as e:
        problems["redis"] = f"{type(e).__name__}: {e}"
    try:
        sink = await asyncio.wait_for(services.sink(), 5)
        await sink.query(_PROBE)
    except (IngestError, OSError, TimeoutError) as e:
        problems["store"] = f"{type(e).__name__}: {e}"
    if "redis" not in problems:
        busy = await read_busy(services.redis, services.keys)
        if busy:
            problems["backpressure"] = busy
    if problems:
        return json_response({"status": "unavailable", "problems": problems}, 503)
    return json_response({"status": "ready"})


_PROBE = ItemQuery(limit=1)


@routes.post("/api/v1/enqueue")
async def enqueue(request: web.Request) -> web.Response:
    """Fetch URLs once through the pipeline; `wait` returns what each delivered."""
    services = request.app[SERVICES]
    body = await json_body(request)
    urls = list_field(body, "urls", required=True) or []
    if not urls or len(urls) > MAX_ENQUEUE:
        raise bad_input("urls", f"give between 1 and {MAX_ENQUEUE} URLs")
    wait = body.get("wait", False)
    if not isinstance(wait, bool):
        raise bad_input("wait", "must be true or false")
    timeout = body.get("timeout", services.settings.enqueue_wait_timeout)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 600:
        raise bad_input("timeout", "must be a number of seconds between 0 and 600")
    busy = await read_busy(services.redis, services.keys)
    if busy:  # backpressure (#20): nothing queued; the client tries again later
        raise ApiError(503, f"busy, nothing queued: {busy}; try again once the consumer groups catch up")
    try:
        jobs = await enqueue_fetch(services.arq, urls, services.settings)
    except URLRefused as e:
        raise bad_input("urls", str(e)) from e
    if not wait:
        return json_response({"jobs": [{"url": u, "job_id": j.job_id} for u, j in zip(urls, jobs, strict=True)]},
                             202)
    results = await asyncio.gather(*(job_outcome(j, u, float(timeout), services.arq, services.keys)
                                     for u, j in zip(urls, jobs, strict=True)))
    return json_response({"results": results})


@routes.get("/api/v1/dead")
async def dead_list(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    kind = request.query.get("kind")
    if kind is not None and kind not in DEAD_KINDS:
        raise bad_input("kind", f"must be one of {', '.join(DEAD_KINDS)}")
    limit = int_param(request, "limit", 50, 1, 1000)
    entries = await list_dead(services.redis, services.keys, limit, kind)
    return json_response({"entries": [e.as_dict() for e in entries]})


@routes.post("/api/v1/dead/retry")
async def dead_retry(request: web.Request) -> web.Response:
    """Put dead letters back: the given `ids`, else all (of `kind`), oldest first, up to `limit`."""
    services = request.app[SERVICES]
    body = await json_body(request)
    ids = list_field(body, "ids") or []
    if any(not _ENTRY_ID.match(i) for i in ids):
        raise bad_input("ids", "must be dead-letter entry ids such as 1736157600123-0")
    kind = body.get("kind")
    if "kind" in body and kind not in DEAD_KINDS:
        raise bad_input("kind", f"must be one of {', '.join(DEAD_KINDS)}")
    limit = body.get("limit", 1000)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100_000:
        raise bad_input("limit", "must be a whole number between 1 and 100000")
    entries = await list_dead(services.redis, services.keys, limit, kind, ids)
    if ids and len(entries) < len(ids):
        found = {e.id for e in entries}
        raise ApiError(404, f"no dead letter {', '.join(i for i in ids if i not in found)}")
    retried, skipped = await retry_dead(services.redis, services.keys, services.arq, entries)
    return json_response({"retried": retried,
                          "skipped": [{"id": e.id, "kind": e.kind, "reason": r} for e, r in skipped]})


@routes.get("/api/v1/stats")
async def stats(request: web.Request) -> web.Response:
    """Counters, queue depth, stream length, dead letters, pending per consumer group."""
    services = request.app[SERVICES]
    return json_response((await read_snapshot(services.redis, services.keys)).as_dict())


@routes.post("/api/v1/poll")
async def poll_all(request: web.Request) -> web.Response:
    """Make every enabled feed due now (the pollers take them within a second)."""
    services = request.app[SERVICES]
    count = await poll_now(services.redis, services.keys, None, time.time())
    return json_response({"due_now": count}, 202)
