"""Who may reach the HTTP server: the listen address rule, the bearer token, CORS.

The rule (docs/api.md): without `api_token` the server only listens on a
loopback address; asked to listen anywhere else it refuses to start and says
why, because the API can add feeds, fetch URLs and retry dead letters. With a
token every request but the health probes must carry it, as
`Authorization: Bearer TOKEN`; the status page also takes it as `?token=`
so a browser can open it. CORS headers are sent only for the origins listed
in `cors_origins` (none by default).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ingest.errors import SettingsError

__all__ = ["PUBLIC_PATHS", "auth_middleware", "check_exposure", "install_cors", "is_loopback", "parse_listen",
           "token_of"]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_listen(text: str) -> tuple[str, int] | None:
    """Pure: "host:port" (IPv6 as "[::1]:8080") -> (host, port); "" -> None (off)."""
    text = text.strip()
    if not text:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("must be HOST:PORT (e.g. 127.0.0.1:8080), or empty to turn the server off")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError("port must be between 0 and 65535")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError("must name a host (127.0.0.1 for this machine only, 0.0.0.0 for every address)")
    return host, port


def is_loopback(host: str) -> bool:
    """Pure: does `host` only ever reach this machine?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def check_exposure(host: str, token: str) -> None:
    """Refuse to serve beyond loopback without a token (raises SettingsError saying why)."""
    if token or is_loopback(host):
        return
    raise SettingsError(
        f"refusing to listen on {host}: no api_token is set, and the API can add feeds, fetch URLs "
        "and retry dead letters. Set INGEST_API_TOKEN, or listen on 127.0.0.1 (INGEST_LISTEN)."
    )


def token_of(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if request.path == "/":
        return request.query.get("token", "")
    return ""


def auth_middleware(token: str) -> Middleware:
    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and request.path not in PUBLIC_PATHS and request.method != "OPTIONS":
            if not hmac.compare_digest(token_of(request).encode(), token.encode()):
                raise web.HTTPUnauthorized(
                    text='{"error": "missing or wrong bearer token (Authorization: Bearer TOKEN)"}',
                    content_type="application/json", headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return check_token


def install_cors(app: web.Application, origins: str) -> None:
    """Answer preflights and add CORS headers for the listed origins (none: nothing at all)."""
    allowed = {o.strip() for o in origins.split(",") if o.strip()}
    if not allowed:
        return

    def allowed_origin(request: web.Request) -> str | None:
        origin = request.headers.get("Origin", "")
        if origin and ("*" in allowed or origin in allowed):
            return "*" if "*" in allowed else origin
        return None

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and allowed_origin(request):
            return web.Response(status=204)
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = allowed_origin(request)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Last-Event-ID"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
            response.headers["Vary"] = "Origin"

    app.middlewares.insert(0, preflight)
    app.on_response_prepare.append(add_headers)
