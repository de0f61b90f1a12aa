"""Feeds: list, add (the same discovery and guard as `ingest add`), get, change, remove, poll now."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ingest.errors import URLRefused
from ingest.poll.adding import AddRequest, NotAFeed, add_from_url
from ingest.poll.manage import FEED_STATES, disable_feed, edit_feed, feed_row, poll_now
from ingest.poll.registry import enable_feed, find_feed_id, list_feeds, load_feed, remove_feed
from ingest.web.app import SERVICES, Services
from ingest.web.errors import ApiError, bad_input, json_response
from ingest.web.params import decode_cursor, encode_cursor, int_param, json_body, list_field, str_list_param

__all__ = ["RECENT_ERRORS", "routes"]

routes = web.RouteTableDef()
RECENT_ERRORS = 10


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_input(name, f"must be a number of seconds between {low:g} and {high:g}")
    return float(value)


def _tags(body: dict[str, Any]) -> list[str] | None:
    tags = list_field(body, "tags")
    if tags and any("," in t or not t.strip() for t in tags):
        raise bad_input("tags", "a tag must not be empty or contain a comma")
    return tags


@routes.get("/api/v1/feeds")
async def list_(request: web.Request) -> web.Response:
    """Registered feeds by id; `state`, `status` and `tag` filter; `cursor`/`limit` page."""
    services = request.app[SERVICES]
    states = str_list_param(request, "state")
    if any(s not in FEED_STATES for s in states):
        raise bad_input("state", f"must be one of {', '.join(FEED_STATES)}")
    statuses = str_list_param(request, "status")
    tags = str_list_param(request, "tag")
    limit = int_param(request, "limit", 100, 1, 1000)
    after = decode_cursor(request).get("i", "") if request.query.get("cursor") else ""
    if not isinstance(after, str):
        raise bad_input("cursor", "is not a cursor this server gave out for this route")
    rows = [feed_row(s, d) for s, d in await list_feeds(services.redis, services.keys)]
    rows = [r for r in rows if r["id"] > after and (not states or r["state"] in states)
            and (not statuses or str(r["status"]) in statuses)
            and (not tags or any(t in r["tags"] for t in tags))]
    page = rows[:limit]  # list_feeds sorts by id: the cursor is the last id of the previous page
    more = len(rows) > limit
    return json_response({"feeds": page, "next_cursor": encode_cursor({"i": page[-1]["id"]}) if more else None})


@routes.post("/api/v1/feeds")
async def add(request: web.Request) -> web.Response:
    """Register a feed, or the feeds a web page advertises; 201 if any was new."""
    services = request.app[SERVICES]
    body = await json_body(request)
    url = body.get("url")
    if not isinstance(url, str) or not url.strip():
        raise bad_input("url", "is required (the feed's or a web page's URL)")
    settings = services.settings
    interval = _number(body, "interval", settings.min_interval, settings.max_interval) or 0
    flags = {name: body.get(name, False) for name in ("list_only", "force")}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise bad_input(name, "must be true or false")
    full_text = body.get("full_text", "")
    if full_text not in ("", "off", "auto", "always"):
        raise bad_input("full_text", "must be off, auto or always")
    req = AddRequest(url=url.strip(), interval=interval, tags=tuple(_tags(body) or ()),
                     list_only=flags["list_only"], force=flags["force"], full_text=full_text)
    try:
        found = await add_from_url(settings, services.redis, services.arq, services.session(), req)
    except URLRefused as e:
        raise bad_input("url", str(e)) from e
    except NotAFeed as e:
        raise ApiError(422, str(e), "url") from e
    created = any(f.created for f in found)
    return json_response({"feeds": [f.__dict__ for f in found]}, 201 if created else 200)


async def _feed_id(services: Services, request: web.Request) -> str:
    feed_id = await find_feed_id(services.redis, services.keys, request.match_info["feed_id"])
    if feed_id is None:
        raise ApiError(404, f"no feed {request.match_info['feed_id']}")
    return feed_id


async def _recent_errors(services: Services, feed_id: str) -> list[dict[str, Any]]:
    """The feed's latest dead letters (newest first), from the last 1000 of the stream."""
    rows = await services.redis.xrevrange(services.keys.dead_stream, count=1000)
    out = []
    for entry_id, fields in rows:
        if fields.get(b"feed_id", b"").decode() == feed_id:
            out.append({"id": entry_id.decode(), "kind": fields.get(b"kind", b"").decode(),
                        "error": fields.get(b"error", b"").decode(), "at": fields.get(b"at", b"").decode()})
            if len(out) >= RECENT_ERRORS:
                break
    return out


async def _one(services: Services, feed_id: str) -> dict[str, Any]:
    state = await load_feed(services.redis, services.keys, feed_id)
    if state is None:
        raise ApiError(404, f"no feed {feed_id}")
    due = await services.redis.zscore(services.keys.schedule, feed_id)
    row = feed_row(state, None if due is None else due / 1000)
    row["recent_errors"] = await _recent_errors(services, feed_id)
    return row


@routes.get("/api/v1/feeds/{feed_id}")
async def get(request: web.Request) -> web.Response:
    """One feed with its state, last error and recent dead letters."""
    services = request.app[SERVICES]
    return json_response(await _one(services, await _feed_id(services, request)))


@routes.patch("/api/v1/feeds/{feed_id}")
async def change(request: web.Request) -> web.Response:
    """Change `interval` (0: adaptive), `tags`, or `enabled` (false disables, with `reason`)."""
    services = request.app[SERVICES]
    feed_id = await _feed_id(services, request)
    body = await json_body(request)
    unknown = sorted(set(body) - {"interval", "tags", "enabled", "reason"})
    if unknown:
        raise bad_input(unknown[0], "is not a field of a feed that can be changed")
    interval = body.get("interval")
    if interval != 0:
        s = services.settings
        interval = _number(body, "interval", s.min_interval, s.max_interval)
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise bad_input("enabled", "must be true or false")
    reason = body.get("reason", "disabled by an operator")
    if not isinstance(reason, str) or not reason.strip():
        raise bad_input("reason", "must be a non-empty string")
    await edit_feed(services.redis, services.keys, feed_id, interval=interval, tags=_tags(body))
    if enabled is True:
        await enable_feed(services.redis, services.keys, feed_id)
    elif enabled is False:
        await disable_feed(services.redis, services.keys, feed_id, reason.strip())
    return json_response(await _one(services, feed_id))


@routes.delete("/api/v1/feeds/{feed_id}")
async def remove(request: web.Request) -> web.Response:
    """Stop polling a feed and forget it (its stored items stay)."""
    services = request.app[SERVICES]
    feed_id = await _feed_id(services, request)
    await remove_feed(services.redis, services.keys, feed_id)
    return json_response({"removed": feed_id})


@routes.post("/api/v1/feeds/{feed_id}/poll")
async def poll(request: web.Request) -> web.Response:
    """Poll this feed now (202); 409 when it is disabled or being fetched right now."""
    services = request.app[SERVICES]
    feed_id = await _feed_id(services, request)
    state = await load_feed(services.redis, services.keys, feed_id)
    if state is not None and state.disabled_reason:
        raise ApiError(409, f"feed {feed_id} is disabled ({state.disabled_reason}); enable it first")
    if not await poll_now(services.redis, services.keys, [feed_id], time.time()):
        raise ApiError(409, f"feed {feed_id} is being fetched right now")
    return json_response({"due_now": 1, "feed_id": feed_id}, 202)
