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


def _position(request: web.Request, text: str | None) -> tuple[int, tuple[str, str] | None]:
    """Where the page starts: an offset into search results, else after (time, id) of a listing."""
    cursor = decode_cursor(request)
    if not cursor:
        return 0, None
    if text is not None:
        offset = cursor.get("o")
        if isinstance(offset, int) and 0 <= offset <= MAX_OFFSET:
            return offset, None
        if isinstance(offset, int) and offset > MAX_OFFSET:
            raise bad_input("cursor", f"search pages end after {MAX_OFFSET} items; narrow the query")
    else:
        when, item_id = cursor.get("w"), cursor.get("i")
        if isinstance(when, str) and isinstance(item_id, str):
            try:
                parse_time(when)
            except ValueError:
                pass
            else:
                return 0, (when, item_id)
    raise bad_input("cursor", "is not a cursor this server gave out for this route")


def item_query(request: web.Request, text: str | None) -> ItemQuery:
    """The filters of a request as an ItemQuery (400 naming the bad parameter)."""
    offset, after = _position(request, text)
    return ItemQuery(
        feed_id=request.query.get("feed") or None, since=_time(request, "since"),
        until=_time(request, "until"), language=request.query.get("lang") or None,
        cluster_id=request.query.get("cluster") or None, text=text,
        limit=int_param(request, "limit", 20, 1, 500), offset=offset, after=after,
    )


async def _page(request: web.Request, query: ItemQuery) -> web.Response:
    sink = await request.app[SERVICES].sink()
    # One more than asked tells whether there is a next page.
    rows = await sink.query(ItemQuery(**{**query.__dict__, "limit": query.limit + 1}))
    page = rows[:query.limit]
    cursor = None
    if len(rows) > query.limit:
        last = page[-1]
        cursor = encode_cursor({"o": query.offset + query.limit} if query.text else
                               {"w": last.get("published_at") or last["fetched_at"], "i": last["id"]})
    return json_response({"items": page, "next_cursor": cursor})


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
