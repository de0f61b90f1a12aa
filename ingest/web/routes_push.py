"""WebSub callbacks: `/push/<token>`, one unguessable URL per subscription (docs/push.md).

GET is the hub's intent verification; POST is content distribution. A POST
is refused, counted and never parsed when its token is unknown (410: the hub
should drop it), its body is larger than `max_body_bytes` (413), or its
`X-Hub-Signature` is missing or wrong (403). A valid one is queued as a
`parse_feed` job and answered 202 at once, so a slow parse never makes the
hub retry. These paths carry no bearer token (a hub has none): the token in
the path and the HMAC secret are what authenticate them.
"""

from __future__ import annotations

from aiohttp import web

from ingest.push.receive import accept_push, count_refusal, verify_intent
from ingest.push.signature import signature_problem
from ingest.push.state import load_subscription
from ingest.web.app import SERVICES

__all__ = ["PUSH_PREFIX", "routes"]

PUSH_PREFIX = "/push/"
routes = web.RouteTableDef()
_CHUNK = 64 * 1024


@routes.get(PUSH_PREFIX + "{token}", allow_head=False)  # a HEAD must never confirm anything
async def verify(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    verdict = await verify_intent(services.redis, services.keys, request.match_info["token"],
                                  dict(request.query), services.settings.push_lease_seconds)
    if verdict.status != 200:
        raise web.HTTPNotFound(text="no such pending subscription")
    return web.Response(text=verdict.body, content_type="text/plain")


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes `limit` bytes (the rest is never read)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@routes.post(PUSH_PREFIX + "{token}")
async def distribute(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    redis, keys = services.redis, services.keys
    sub = await load_subscription(redis, keys, request.match_info["token"])
    if sub is None:
        await count_refusal(redis, keys, "unknown", None)
        raise web.HTTPGone(text="no such subscription")
    body = await _read_limited(request, services.settings.max_body_bytes)
    if body is None:
        await count_refusal(redis, keys, "too_large", sub)
        raise web.HTTPRequestEntityTooLarge(max_size=services.settings.max_body_bytes,
                                            actual_size=request.content_length or 0)
    problem = signature_problem(request.headers.get("X-Hub-Signature"), body, sub.secret)
    if problem:
        await count_refusal(redis, keys, problem, sub)
        raise web.HTTPForbidden(text=f"refused: {problem}")
    if not await accept_push(redis, services.arq, keys, sub, body, request.headers.get("Content-Type", "")):
        await count_refusal(redis, keys, "feed_gone", sub)
        raise web.HTTPGone(text="the feed of this subscription is gone")
    return web.Response(status=202, text="accepted")
