"""A poll's conditional GET written on a pooled connection by hand (#21, decision 156).

`lean_get` (decision 147) left out `ClientSession._request`'s general machinery, but a
304 poll still built a `ClientRequest` (headers merged into a new CIMultiDict, cookies
filtered, auth, proxy, body and transfer-encoding set up), a `StreamWriter`, a
`RequestInfo` and a `ClientResponse` with its writer bookkeeping, ~45 µs of the daemon's
loop per poll for one request line and five headers written and one head read.

`raw_get` does the plain case with aiohttp's own lower pieces and nothing between them:
the connector's pool (`BaseConnector._get`, the step `connector.connect` starts with),
the request head serialized by aiohttp's `_serialize_headers` in the order
`ClientRequest` puts the headers (Host, the caller's, then the default Accept,
Accept-Encoding and User-Agent it adds when missing), written on the transport, and
the reply read from that connection's `ResponseHandler` (its HTTP parser, set up as
`lean_get` sets it, and kept for the connection's next reply while only `raw_get`
uses it). A connection that is not pooled comes from `connector.connect` with a real
`ClientRequest`, so the guarded resolver judges every new connection and TLS is
aiohttp's. The retry of a kept-alive connection the server had closed is
`leanget.with_retry`, the one `lean_get` uses.

Whenever the result could differ from `lean_get`'s, `raw_get` is `lean_get`
(`raw_head` returns None): cookies in the session's jar (the jar would add a Cookie
header), credentials in the URL (auth), a Host, Cookie or Connection header given,
skip_auto_headers, a request or response class or HTTP version not the default, a
force-closing connector, an aiohttp release not in `leanget.CHECKED_AIOHTTP`. A
header value with CR or LF raises aiohttp's own ValueError, before a connection is
taken. The reply's Set-Cookie headers go to the jar as `lean_get` puts them.

aiohttp's private parts this relies on (tests/test_rawget.py compares both paths on
real servers, so an upgrade that moves them fails there): `BaseConnector._get`,
`Connection` (protocol, release, close), `ResponseHandler.read`,
`ResponseHandler.set_response_params`, `ResponseHandler._parser`,
`ResponseHandler.start_timeout`, `http_writer._serialize_headers`, `ClientRequest.DEFAULT_HEADERS`,
`ClientSession._request_class`, `_response_class`, `_version`, `_connector`, and
what `leanget` uses.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import hdrs
from aiohttp.client_reqrep import ConnectionKey, RequestInfo
from aiohttp.connector import Connection
from aiohttp.http import SERVER_SOFTWARE, HttpProcessingError, HttpVersion11
from aiohttp.http_writer import _serialize_headers
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ingest.poll import leanget

__all__ = ["RawResponse", "raw_get", "raw_head"]

_SSL_SCHEMES = frozenset({"https", "wss"})
_NO_TRACES: list[Any] = []  # never appended to: aiohttp only iterates it
_REFUSED_HEADERS = (hdrs.HOST, hdrs.COOKIE, hdrs.CONNECTION)


class _Items:
    """The head's headers in order, for `_serialize_headers` (it only calls items())."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return self.pairs


def _session_is_plain(session: aiohttp.ClientSession) -> bool:
    """Nothing on the session that `ClientRequest` would add to or change in the head."""
    connector = session._connector  # noqa: SLF001 - see the module's docstring
    return (leanget._LEAN_ON and connector is not None and not connector.force_close  # noqa: SLF001
            and session._request_class is aiohttp.ClientRequest  # noqa: SLF001
            and session._response_class is aiohttp.ClientResponse  # noqa: SLF001
            and session._version == HttpVersion11  # noqa: SLF001
            and not session.skip_auto_headers and not len(session.cookie_jar))


def raw_head(session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str]) -> list[tuple[str, str]] | None:
    """The headers `ClientRequest` would send for this GET, in its order, or None when
    `raw_get` must leave the request to `lean_get` (see the module's docstring)."""
    if url.raw_user or url.raw_password or not _session_is_plain(session):
        return None
    for name in _REFUSED_HEADERS:
        if name in headers:
            return None
    host = url.host_port_subcomponent
    if host is None:
        return None
    pairs = [(hdrs.HOST, host), *headers.items()]
    for name, value in aiohttp.ClientRequest.DEFAULT_HEADERS.items():
        if name not in headers:
            pairs.append((name, value))
    if hdrs.USER_AGENT not in headers:
        pairs.append((hdrs.USER_AGENT, SERVER_SOFTWARE))
    return pairs


class RawResponse:
    """The reply's head and its body stream, as much of `ClientResponse` as a fetch reads.

    Leaving the `async with` gives the connection back to the pool; the connector
    closes it instead when the body was not read to its end or the reply asked to
    close (`ResponseHandler.should_close`), as it does for `ClientResponse.release`.
    """

    __slots__ = ("_conn", "content", "headers", "raw_headers", "reason", "status", "url", "version")

    def __init__(self, message: Any, payload: StreamReader, conn: Connection, url: URL) -> None:
        self.status: int = message.code
        self.reason: str | None = message.reason
        self.version = message.version
        self.headers: CIMultiDictProxy[str] = message.headers
        self.raw_headers = message.raw_headers
        self.content = payload
        self.url = url
        self._conn: Connection | None = conn

    @property
    def content_length(self) -> int | None:
        """Content-Length as a number (`HeadersMixin.content_length`)."""
        value = self.headers.get(hdrs.CONTENT_LENGTH)
        return None if value is None else int(value)

    def release(self) -> None:
        """The connection back to the connector (closed there if it cannot be reused)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.release()

    def close(self) -> None:
        """The connection closed, whatever its state."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def __aenter__(self) -> RawResponse:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()


async def raw_get(session: aiohttp.ClientSession, url: URL, headers: CIMultiDict[str],
                  timeout: aiohttp.ClientTimeout) -> RawResponse | aiohttp.ClientResponse:
    """GET `url` as `lean_get` does (same bytes written, same outcomes, redirects not
    followed), without its ClientRequest and ClientResponse when `raw_head` allows;
    otherwise `lean_get`'s response. Use the result with `async with`."""
    if not url.raw_host:
        raise aiohttp.InvalidUrlClientError(url)
    pairs = raw_head(session, url, headers)
    if pairs is None:
        return await leanget.lean_get(session, url, headers, timeout)
    head = _serialize_headers(f"GET {url.raw_path_qs} HTTP/1.1", _Items(pairs))  # type: ignore[arg-type]
    if url.raw_fragment:
        url = url.with_fragment(None)
    key = tuple.__new__(ConnectionKey, (
        url.raw_host or "", url.port, url.scheme in _SSL_SCHEMES, True, None, None, None, None))
    resp = await leanget.with_retry(session, lambda: _once(session, url, key, head, pairs, timeout))
    if hdrs.SET_COOKIE in resp.headers:
        session.cookie_jar.update_cookies_from_headers(tuple(resp.headers.getall(hdrs.SET_COOKIE)), url)
    return resp


async def _once(session: aiohttp.ClientSession, url: URL, key: ConnectionKey, head: bytes,
                pairs: list[tuple[str, str]], timeout: aiohttp.ClientTimeout) -> RawResponse:
    """One try: a connection, the head written, the reply's head read."""
    connector = session._connector  # noqa: SLF001
    assert connector is not None
    conn = await connector._get(key, _NO_TRACES)  # noqa: SLF001 - the pool, as connect() takes it
    if conn is None:  # a new connection: the guarded resolver, limits and TLS of connect()
        req = aiohttp.ClientRequest("GET", url, loop=session._loop, session=session, ssl=True)  # noqa: SLF001
        conn = await leanget.connect(session, req, timeout)
    try:
        protocol = conn.protocol
        assert protocol is not None
        _parser_for(session, protocol, timeout)
        transport = protocol.transport
        if transport is None or transport.is_closing():
            raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
        protocol.start_timeout()
        transport.write(head)
        while True:
            try:
                message, payload = await protocol.read()
            except HttpProcessingError as exc:
                raise aiohttp.ClientResponseError(
                    _request_info(url, pairs), (), status=exc.code, message=exc.message, headers=exc.headers,
                ) from exc
            if message.code < 100 or message.code > 199 or message.code == 101:
                break
    except BaseException:
        conn.close()
        raise
    return RawResponse(message, payload, conn, url)


def _parser_for(session: aiohttp.ClientSession, protocol: Any, timeout: aiohttp.ClientTimeout) -> None:
    """The connection's response parser set up as `lean_get` sets it, or kept when this
    module set it up for the connection's previous reply with the same read timeout: an
    HTTP/1.1 parser reads one reply after another on a kept-alive connection (aiohttp's
    server side reads requests so), and a new one per reply cost ~3% of the loop. A
    parser anyone else set (a `lean_get` or `session.get` in between) is replaced."""
    mark = (protocol._parser, timeout.sock_read)  # noqa: SLF001
    if mark[0] is None or protocol.__dict__.get("_ingest_raw") != mark:
        leanget.set_params(session, protocol, timeout)
        protocol._ingest_raw = (protocol._parser, timeout.sock_read)  # noqa: SLF001


def _request_info(url: URL, pairs: list[tuple[str, str]]) -> RequestInfo:
    """What `ClientResponseError` quotes of the request, on the error path only."""
    return RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict(pairs)), url)
