"""The OpenAPI 3 document of the HTTP API, served at /api/v1/openapi.json.

Written by hand, next to the routes, and checked against the router by
tests/test_web_openapi.py: every route the server answers is documented
with its method, and every documented path is served.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ingest import __version__
from ingest.poll.manage import FEED_STATES
from ingest.web.errors import json_response
from ingest.web.routes_ops import DEAD_KINDS

__all__ = ["document", "routes"]

routes = web.RouteTableDef()

_ERR = {"$ref": "#/components/responses/Error"}
_JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}


def _q(name: str, description: str, kind: str = "string", repeat: bool = False,
       **limits: Any) -> dict[str, Any]:
    """A query parameter; `limits` are JSON Schema keywords (minimum, maximum, enum, ...)."""
    schema: dict[str, Any] = {"type": kind, **limits}
    if repeat:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            **({"style": "form", "explode": True} if repeat else {})}


_FEED_ID = {"name": "feed_id", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The feed's id (16 hex characters)."}
_CURSOR = _q("cursor", "next_cursor of the previous page.", minLength=1)
_PAGE = [_q("limit", "Page size.", "integer", minimum=1, maximum=500), _CURSOR]
_TIME: dict[str, Any] = {"minLength": 1}
_ITEM_FILTERS = [
    _q("feed", "Only items of this feed id."),
    _q("since", "Published (else fetched) at or after; ISO 8601, UTC unless an offset is given.", **_TIME),
    _q("until", "Published (else fetched) before.", **_TIME),
    _q("lang", "Language tag; 'de' also matches 'de-DE'."),
    _q("cluster", "Only copies of this story (cluster id)."),
]


def _op(summary: str, ok: str = "200", params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, errors: tuple[str, ...] = ("401", "503"),
        content: dict[str, Any] | None = None, also: tuple[str, ...] = ()) -> dict[str, Any]:
    oks = {code: {"description": "OK", "content": content or _JSON_OBJECT} for code in (ok, *also)}
    op: dict[str, Any] = {"summary": summary, "responses": {**oks, **{code: _ERR for code in errors}}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props}


_STR = {"type": "string"}
_WORD = {"type": "string", "minLength": 1}
_WORDS = {"type": "array", "items": _WORD}
_TAGS = {"type": "array", "items": {"type": "string", "pattern": "^[^,]*\\S[^,]*$"}}
_ENTRY_ID = r"^(\$|\d+(-\d+)?)$"
_STRS = {"type": "array", "items": _STR}
_BOOL = {"type": "boolean"}
_NUM = {"type": "number"}


def document() -> dict[str, Any]:
    """Pure: the whole document."""
    paths: dict[str, Any] = {
        "/healthz": {"get": {**_op("The process is alive.", errors=()), "security": []}},
        "/readyz": {"get": {**_op("Redis and the store answer, no backpressure (503 with the reasons when not).",
                                       errors=("503",)),
                            "security": []}},
        "/metrics": {"get": _op("Prometheus metrics (text format), service-wide.",
                                content={"text/plain": {"schema": _STR}})},
        "/": {"get": _op("The status page (HTML). Also takes the token as ?token=.",
                         params=[_q("token", "The api_token, for browsers.")],
                         content={"text/html": {"schema": _STR}})},
        "/api/v1/openapi.json": {"get": _op("This document.")},
        # WebSub callbacks (#11, docs/push.md): authenticated by the path token and the HMAC, not the bearer.
        "/push/{token}": {
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": _STR,
                            "description": "The subscription's unguessable callback token."}],
            "get": {**_op("WebSub intent verification: answers hub.challenge only for a pending "
                          "subscription with the same hub.mode and hub.topic.",
                          params=[_q("hub.mode", "subscribe, unsubscribe or denied."),
                                  _q("hub.topic", "The topic URL."), _q("hub.challenge", "Echoed when confirmed."),
                                  _q("hub.lease_seconds", "The lease the hub grants.", "integer")],
                          errors=("404",), content={"text/plain": {"schema": _STR}}), "security": []},
            "post": {**_op("WebSub content distribution: a body signed with X-Hub-Signature is queued for "
                           "parsing (202); unsigned or wrongly signed 403, too large 413, unknown token 410.",
                           ok="202", errors=("403", "404", "410", "413"), content={"text/plain": {"schema": _STR}}),
                     "security": []},
        },
        "/api/v1/feeds": {
            "get": _op("Registered feeds, by id.", params=[
                _q("state", "new, ok, failing or disabled.", repeat=True, enum=list(FEED_STATES)),
                _q("status", "Last HTTP status (200, 304, 500, ...), or new or disabled.", repeat=True),
                _q("tag", "Feeds with this tag.", repeat=True),
                _q("limit", "Page size.", "integer", minimum=1, maximum=1000), _CURSOR],
            errors=("400", "401", "503")),
            "post": _op("Register a feed, or the feeds a web page advertises (same discovery and URL guard "
                        "as `ingest add`). 201 if one was new, 200 if all were known.", ok="201", also=("200",),
                        body={**_obj(url={**_WORD, "pattern": "\\S"}, interval=_NUM, tags=_TAGS, list_only=_BOOL,
                                   force=_BOOL, full_text={"type": "string", "enum": ["off", "auto", "always"]}),
                              "required": ["url"]},
                        errors=("400", "401", "413", "422", "503")),
        },
        "/api/v1/feeds/{feed_id}": {
            "parameters": [_FEED_ID],
            "get": _op("One feed with its state, last error and recent dead letters.",
                       errors=("401", "404", "503")),
            "patch": _op("Change interval (0: adaptive) or tags; enabled=false disables (with a reason), "
                         "true enables.", body={**_obj(interval=_NUM, tags=_TAGS, enabled=_BOOL,
                                                   reason={**_WORD, "pattern": "\\S"}),
                                   "additionalProperties": False},
                         errors=("400", "401", "404", "413", "503")),
            "delete": _op("Stop polling and forget the feed (stored items stay).", errors=("401", "404", "503")),
        },
        "/api/v1/feeds/{feed_id}/poll": {
            "parameters": [_FEED_ID],
            "post": _op("Poll this feed now.", ok="202", errors=("401", "404", "409", "503")),
        },
        "/api/v1/poll": {"post": _op("Make every enabled feed due now.", ok="202")},
        "/api/v1/enqueue": {"post": _op(
            "Fetch URLs once through the pipeline: 202 with the job ids, or with wait=true 200 and "
            "what each delivered; 503 'busy' under backpressure (nothing queued).", ok="202", also=("200",),
            body={**_obj(urls={**_WORDS, "minItems": 1, "maxItems": 100}, wait=_BOOL,
                         timeout={"type": "number", "minimum": 0, "exclusiveMinimum": True,
                                                  "maximum": 600}), "required": ["urls"]},
            errors=("400", "401", "413", "503"))},
        "/api/v1/items": {"get": _op("Stored items, newest first.", params=[*_ITEM_FILTERS, *_PAGE],
                                     errors=("400", "401", "503"))},
        "/api/v1/items/search": {"get": _op(
            "Full-text search, best match first.",
            params=[{**_q("q", "Words that must all occur.", minLength=1, pattern=r"\S"), "required": True},
                    *_ITEM_FILTERS, *_PAGE],
            errors=("400", "401", "503"))},
        "/api/v1/items/stream": {"get": _op(
            "Live items as Server-Sent Events; resumes after Last-Event-ID (replay, then live).",
            params=[_q("feed", "Feed id.", repeat=True), _q("tag", "Tag.", repeat=True),
                    _q("lang", "Language.", repeat=True),
                    _q("from", "Entry id to resume after (as Last-Event-ID); 0: all kept; $: only new.",
                       pattern=_ENTRY_ID),
                    _q("heartbeat", "Seconds between keep-alive comments.", "integer", minimum=1, maximum=300),
                    {"name": "Last-Event-ID", "in": "header", "required": False,
                     "schema": {"type": "string", "pattern": _ENTRY_ID}}],
            content={"text/event-stream": {"schema": _STR}}, errors=("400", "401", "503"))},
        "/api/v1/dead": {"get": _op("Dead letters, oldest first.", params=[
            _q("kind", "Which stage gave up.", enum=list(DEAD_KINDS)),
            _q("limit", "At most this many.", "integer", minimum=1, maximum=1000)],
            errors=("400", "401", "503"))},
        "/api/v1/dead/retry": {"post": _op(
            "Put dead letters back (the given ids, else all of kind, up to limit).",
            body=_obj(ids={"type": "array", "items": {"type": "string", "pattern": r"^\d+-\d+$"}},
                      kind={"type": "string", "enum": list(DEAD_KINDS)},
                      limit={"type": "integer", "minimum": 1, "maximum": 100_000}),
            errors=("400", "401", "404", "413", "503"))},
        "/api/v1/stats": {"get": _op("Counters, queue depth, stream length, pending per consumer group.")},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "ingest", "version": __version__,
                 "description": "News-feed ingestion service: feeds, items, live stream, operations. "
                                "See docs/api.md."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "An error a person can read; `field` names bad input.",
                                    "content": {"application/json": {"schema": _obj(error=_STR, field=_STR)}}}},
        },
        "security": [{"bearer": []}],
    }


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(document())
