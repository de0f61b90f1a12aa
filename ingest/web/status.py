"""The status page's content: gathered once from Redis, shown as HTML (`/`) or text (`ingest status`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from ingest.deliver.dead import DeadEntry
from ingest.keys import Keys
from ingest.poll.manage import FEED_STATES, feed_row
from ingest.poll.registry import list_feeds
from ingest.stats import Snapshot, items_per_minute, read_snapshot
from ingest.web.app import SERVICES

__all__ = ["FAILING_SHOWN", "StatusData", "gather_status", "group_mark", "lag_entries", "routes", "status_text"]

routes = web.RouteTableDef()
FAILING_SHOWN = 10
FEEDS_SHOWN = 25
REFRESH_SECONDS = 30


@dataclass(frozen=True)
class StatusData:
    generated_at: float
    snapshot: Snapshot
    feeds_by_state: dict[str, int]
    failing: list[dict[str, Any]]  # the feeds with most consecutive errors, as feed rows
    per_minute: list[tuple[int, int]]  # (epoch minute, items) over the last hour
    recent_dead: list[dict[str, str]]  # newest dead letters
    feeds: list[dict[str, Any]]  # the first FEEDS_SHOWN feeds, newest added first
    feed_count: int


async def gather_status(redis: aioredis.Redis, keys: Keys, now: float | None = None) -> StatusData:
    now = time.time() if now is None else now
    listed = sorted(await list_feeds(redis, keys), key=lambda sd: sd[0].added_at, reverse=True)
    rows = [feed_row(s, d) for s, d in listed]
    by_state = {state: 0 for state in FEED_STATES}
    for row in rows:
        by_state[row["state"]] += 1
    failing = sorted((r for r in rows if r["state"] in ("failing", "disabled") and r["last_error"]),
                     key=lambda r: (-r["consecutive_errors"], r["id"]))[:FAILING_SHOWN]
    newest = await redis.xrevrange(keys.dead_stream, count=5)
    dead = [DeadEntry.of(eid, fields) for eid, fields in newest]
    recent = [{"id": e.id, "kind": e.kind, "error": e.error,
               "where": e.fields.get("url") or e.fields.get("group", "")} for e in dead]
    return StatusData(generated_at=now, snapshot=await read_snapshot(redis, keys), feeds_by_state=by_state,
                      failing=failing, per_minute=await items_per_minute(redis, keys, 60, now),
                      recent_dead=recent, feeds=rows[:FEEDS_SHOWN], feed_count=len(rows))


def group_mark(durable: str) -> str:
    """Pure: how a group's durability shows beside its name."""
    return {"protected": " (durable)", "released": " (durable, RELEASED)"}.get(durable, "")


def lag_entries(lag: int | None) -> str:
    return "" if lag is None else f"{lag} entries, "


def status_text(data: StatusData) -> str:
    """Pure: the page's content for a terminal (`ingest status`)."""
    s = data.snapshot
    lines = ["feeds:        " + ", ".join(f"{n} {state}" for state, n in data.feeds_by_state.items()),
             f"items/hour:   {sum(n for _, n in data.per_minute)} "
             f"(last 10 min: {' '.join(str(n) for _, n in data.per_minute[-10:])})",
             f"queue depth:  {s.queue_depth}", f"stream:       {s.stream_length} entries",
             f"dead letters: {s.dead_letters}",
             f"backpressure: {'ENGAGED: ' + s.backpressure if s.backpressure else 'off'}"]
    trimmed = int(s.counters.get("stream_trimmed_unread", 0))
    released = int(s.counters.get("durable_groups_released", 0))
    if trimmed or released:
        lines.append(f"trimmed unread: {trimmed} entries; durable groups released: {released}")
    for g in s.groups:
        lines.append(f"group {g.name}{group_mark(g.durable)}: {g.consumers} consumers, {g.pending} pending, "
                     f"lag {lag_entries(g.lag)}{g.lag_seconds:.1f} s")
    if data.failing:
        lines.append("most failing feeds:")
        lines += [f"  {r['id']}  {r['consecutive_errors']:>3} errors  {r['url']}\n      {r['last_error']}"
                  for r in data.failing]
    if data.recent_dead:
        lines.append("latest dead letters:")
        lines += [f"  {d['id']}  {d['kind']:10}  {d['where']}  {d['error'][:100]}" for d in data.recent_dead]
    return "\n".join(lines)


@routes.get("/")
async def page(request: web.Request) -> web.Response:
    from ingest.web.page import render_page

    services = request.app[SERVICES]
    data = await gather_status(services.redis, services.keys)
    return web.Response(text=render_page(data, REFRESH_SECONDS), content_type="text/html", charset="utf-8")
