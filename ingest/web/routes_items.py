"""Stored items: query and full-text search with the filters of `ingest items` / `ingest search`."""

from __future__ import annotations

from aiohttp import web

from ingest.store.base import ItemQuery, parse_time
from ingest.web.app import SERVICES
from ingest.web.errors import bad_input, json_response
from ingest.web.params import decode_cursor, encode_cursor, int_param

__all__ = ["MAX_OFFSET", "item_query", "routes"]

routes = web.RouteTableDef()
MAX_OFFSET = 100_000


def _time(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise bad_input(name, f"{raw!r} is not an ISO 8601 date or time") from None


def item_query(request: web.Request, text: str | None) -> ItemQuery:
    """The filters of a request as an ItemQuery (400 naming the bad parameter)."""
    offset = decode_cursor(request)
    if offset > MAX_OFFSET:
        raise bad_input("cursor", f"pages end after {MAX_OFFSET} items; narrow the query with since/until")
    return ItemQuery(
        feed_id=request.query.get("feed") or None, since=_time(request, "since"),
        until=_time(request, "until"), language=request.query.get("lang") or None,
        cluster_id=request.query.get("cluster") or None, text=text,
        limit=int_param(request, "limit", 20, 1, 500), offset=offset,
    )


async def _page(request: web.Request, query: ItemQuery) -> web.Response:
    sink = await request.app[SERVICES].sink()
    # One more than asked tells whether there is a next page.
    rows = await sink.query(ItemQuery(**{**query.__dict__, "limit": query.limit + 1}))
    more = len(rows) > query.limit
    return json_response({"items": rows[:query.limit],
                          "next_cursor": encode_cursor(query.offset + query.limit) if more else None})


@routes.get("/api/v1/items")
async def items(request: web.Request) -> web.Response:
    """Stored items, newest first (published, else fetched)."""
    return await _page(request, item_query(request, None))


@routes.get("/api/v1/items/search")
async def search(request: web.Request) -> web.Response:
    """Full-text search, best match first; every word of `q` must occur."""
    text = request.query.get("q", "").strip()
    if not text:
        raise bad_input("q", "is required: the words to search for")
    return await _page(request, item_query(request, text))
