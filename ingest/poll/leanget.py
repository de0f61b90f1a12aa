"""One GET on a ClientSession's pool, without `ClientSession._request`'s general machinery.

A 304 poll spent ~45% of the daemon's loop in aiohttp's client (#21), and a good part
of that before a byte is written: `session.get` binds ~40 keyword arguments into
`_request`, which merges the session's default headers into a new CIMultiDict, sets
up a TimeoutHandle, traces, middlewares, proxy and netrc look-ups, auth from the URL,
and a redirect loop, for a poll that uses none of them (no redirects followed by
aiohttp, no proxy, no traces, no auth, no per-request timeout: the fetch's deadline is
`ingest/poll/timeouts.py`'s coarse timer).

`lean_get` does what `_request` does for exactly that case and nothing else, with
aiohttp's own pieces: the session's request and response classes (so Host,
Accept-Encoding, cookies and the request line are aiohttp's), its connector (pool,
limits, the guarded resolver: every new connection is still judged by
`GuardedResolver`), the session's cookie jar (cookies sent and stored as before), the
session's read limits and decompression, and its one retry of an idempotent request
on a kept-alive connection the server had closed. `can_lean` says when that is
everything the session would do; otherwise the caller uses `session.get`.

It touches attributes aiohttp keeps private (`_request_class`, `_connector`,
`_retry_connection`, `ResponseHandler.set_response_params`, ...): aiohttp is pinned
(requirements/), and tests/test_leanget.py holds this path to `session.get` on one
server (request bytes, cookies, a closed keep-alive connection, a request the server
hangs up on, errors), so an upgrade that moves them fails there first. pyproject.toml
allows other aiohttp releases than the one locked (`pip install .`), so the lean path
is taken only on the aiohttp minor versions it was checked against
(`CHECKED_AIOHTTP`); on any other the fetch uses `session.get`, slower and correct.
Widening the set is a decision: run tests/test_leanget.py on that release
(`LEAN_GET_CHECK=1` runs its comparisons whatever the version says) and add it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.helpers import TimerNoop
from multidict import CIMultiDict
from yarl import URL

__all__ = [
    "CHECKED_AIOHTTP", "can_lean", "connect", "lean_get", "lean_supported", "merged_headers", "set_params",
    "with_retry",
]

_T = TypeVar("_T")

_NO_TIMER = TimerNoop()  # stateless: one for every request

CHECKED_AIOHTTP: frozenset[tuple[int, int]] = frozenset({(3, 14)})
"""aiohttp (major, minor) releases whose private pieces `lean_get` was checked against."""


def _minor(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def lean_supported(version: str = aiohttp.__version__) -> bool:
    """Is this aiohttp release one `lean_get` was checked against? Elsewhere the lean
    path is off, not guessed at: a moved private attribute would break every poll."""
    return _minor(version) in CHECKED_AIOHTTP


_LEAN_ON = lean_supported()


def can_lean(session: aiohttp.ClientSession) -> bool:
    """True when `session.get(url, allow_redirects=False)` would do nothing `lean_get` does
    not: no trace configs, middlewares, default auth, base URL, env trust (proxies,
    netrc), raise_for_status or default proxy on the session; and False on an aiohttp
    release `lean_get` was not checked against."""
    return (_LEAN_ON and not session.trace_configs and not getattr(session, "_middlewares", ())
            and session.auth is None and getattr(session, "_base_url", None) is None
            and not session.trust_env and not getattr(session, "_raise_for_status", True)
            and getattr(session, "_default_proxy", None) is None
            and session.connector is not None)


def merged_headers(session: aiohttp.ClientSession, extra: dict[str, str]) -> CIMultiDict[str]:
    """The session's default headers with `extra` over them, as `_prepare_headers` merges them."""
    headers = CIMultiDict(session.headers)
    for name, value in extra.items():
        headers[name] = value
    return headers


async def lean_get(session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str],
                   timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
    """GET `url` on the session's pool, redirects not followed; the response as `session.get`
    gives it (use it with `async with`). Of `timeout` only the connect and read limits
    apply (the caller's deadline is the total)."""
    if not url.raw_host:
        raise aiohttp.InvalidUrlClientError(url)

    def attempt() -> Awaitable[aiohttp.ClientResponse]:
        req = session._request_class(  # noqa: SLF001 - see the module's docstring
            "GET", url, headers=headers, skip_auto_headers=session.skip_auto_headers or None,
            cookies=session.cookie_jar.filter_cookies(url), version=session._version,  # noqa: SLF001
            loop=session._loop, response_class=session._response_class,  # noqa: SLF001
            timer=_NO_TIMER, session=session, ssl=True,
        )
        return _send(session, req, timeout)

    resp = await with_retry(session, attempt)
    if resp._raw_cookie_headers:  # noqa: SLF001
        session.cookie_jar.update_cookies_from_headers(resp._raw_cookie_headers, resp.url)  # noqa: SLF001
    return resp


async def with_retry(session: aiohttp.ClientSession, attempt: Callable[[], Awaitable[_T]]) -> _T:
    """`attempt()` (a connection taken, the request written, the head read), once more
    when a kept-alive connection turned out closed, with `_request`'s error mapping:
    shared by `lean_get` and `rawget.raw_get` so both retry as `session.get` does."""
    retry = session._retry_connection  # noqa: SLF001
    while True:
        try:
            return await attempt()
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError):
            raise
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            if not retry:  # a kept-alive connection the server closed: once more, as aiohttp does
                raise
            retry = False
        except aiohttp.ClientError:
            raise
        except OSError as exc:
            if exc.errno is None and isinstance(exc, asyncio.TimeoutError):
                raise
            raise aiohttp.ClientOSError(*exc.args) from exc


def set_params(session: aiohttp.ClientSession, protocol: ResponseHandler, timeout: aiohttp.ClientTimeout) -> None:
    """The connection's response parser set up as `_request` sets it for this session."""
    connector = session._connector  # noqa: SLF001
    assert connector is not None
    protocol.set_response_params(
        timer=_NO_TIMER, skip_payload=False, read_until_eof=True,
        auto_decompress=session.auto_decompress, read_timeout=timeout.sock_read,
        read_bufsize=session._read_bufsize,  # noqa: SLF001
        timeout_ceil_threshold=connector._timeout_ceil_threshold,  # noqa: SLF001
        max_line_size=session._max_line_size,  # noqa: SLF001
        max_field_size=session._max_field_size,  # noqa: SLF001
        max_headers=session._max_headers,  # noqa: SLF001
    )


async def connect(session: aiohttp.ClientSession, req: aiohttp.ClientRequest,
                  timeout: aiohttp.ClientTimeout) -> Connection:
    """A connection for `req` from the connector: pooled, or new through the guarded
    resolver and TLS; a connect timeout raised as `_request` raises it."""
    connector = session._connector  # noqa: SLF001
    assert connector is not None
    try:
        return await connector.connect(req, traces=[], timeout=timeout)
    except TimeoutError as exc:
        raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {req.url}") from exc


async def _send(session: aiohttp.ClientSession, req: aiohttp.ClientRequest,
                timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
    """A connection from the pool (or a new one), the request written, the head read:
    `_request`'s `_connect_and_send_request`."""
    conn = await connect(session, req, timeout)
    protocol = conn.protocol
    assert protocol is not None
    set_params(session, protocol, timeout)
    try:
        resp = await req.send(conn)
        try:
            await resp.start(conn)
        except BaseException:
            resp.close()
            raise
    except BaseException:
        conn.close()
        raise
    return resp
