"""raw_get against lean_get and session.get on real loopback servers: the same bytes, the same outcomes.

The server is raw asyncio (no aiohttp on that side), so what is compared is what each
client path writes on the wire and what the caller reads back: 200, 304, a redirect,
chunked and gzip bodies, an HTTP/1.0 reply, a body read to the connection's end, a
reply that asks to close, cookies (raw_get hands those requests to lean_get), a
kept-alive connection the server closed, a request the server hangs up on, a refused
private address, and TLS with a self-signed certificate.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

import ingest.poll.leanget as leanget
import ingest.poll.rawget as rawget
from ingest.poll.fetch import conditional_get, new_session
from ingest.poll.leanget import lean_get, lean_supported, merged_headers
from ingest.poll.rawget import RawResponse, raw_get, raw_head
from ingest.poll.urlguard import GuardedResolver
from ingest.settings import Settings
from tests.rawhttp import RawHTTPServer

pytestmark = pytest.mark.skipif(
    not lean_supported(), reason=f"aiohttp {aiohttp.__version__} is not in leanget.CHECKED_AIOHTTP")

Reply = tuple[int, dict[str, str], bytes]
Get = Callable[[aiohttp.ClientSession, str, dict[str, str]], Awaitable[Reply]]


_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5)


async def _via_session(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Reply:
    async with session.get(url, headers=headers, allow_redirects=False) as response:
        return response.status, dict(response.headers), await response.read()


async def _via_lean(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Reply:
    async with await lean_get(session, URL(url), merged_headers(session, headers), _TIMEOUT) as response:
        return response.status, dict(response.headers), await response.read()


async def _via_raw(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Reply:
    async with await raw_get(session, URL(url), merged_headers(session, headers), _TIMEOUT) as response:
        chunks = [chunk async for chunk in response.content.iter_chunked(65536)]
        return response.status, dict(response.headers), b"".join(chunks)


def _loopback_session() -> aiohttp.ClientSession:
    return new_session(Settings(allow_networks="127.0.0.0/8"))


async def _run(get: Get, sequence: list[tuple[str, dict[str, str]]], *, drop_idle: bool = False,
               hang_up: bool = False) -> tuple[list[bytes], list[Reply], int]:
    async with RawHTTPServer(host="localhost") as server:
        server.drop_idle, server.hang_up = drop_idle, hang_up
        session = _loopback_session()
        replies = []
        try:
            for path, headers in sequence:
                replies.append(await get(session, server.url(path), headers))
                await asyncio.sleep(0.2 if drop_idle else 0.06)  # closes by the server have landed
        finally:
            await session.close()
        port = str(server.port).encode()
        return [h.replace(port, b"PORT") for h in server.heads], replies, server.connections


def _comparable(replies: list[Reply]) -> list[Reply]:
    """Date-free: the raw server sends none, so the whole reply compares."""
    return replies


async def _all_paths(sequence: list[tuple[str, dict[str, str]]], **kw: bool) -> tuple[list[bytes], list[Reply], int]:
    """The sequence by session.get, lean_get and raw_get, each on a fresh server: the
    same request bytes, replies and number of connections; raw_get's are returned."""
    plain = await _run(_via_session, sequence, **kw)
    lean = await _run(_via_lean, sequence, **kw)
    raw = await _run(_via_raw, sequence, **kw)
    assert raw[0] == lean[0] == plain[0]
    assert _comparable(raw[1]) == _comparable(lean[1]) == _comparable(plain[1])
    assert raw[2] == lean[2] == plain[2]
    return raw


async def test_plain_replies_are_the_same_on_every_path() -> None:
    validators = {"If-None-Match": '"v1"', "If-Modified-Since": "Mon, 05 Jan 2026 06:00:00 GMT"}
    heads, replies, connections = await _all_paths([
        ("/304", validators), ("/plain", {}), ("/moved", {}), ("/chunked", {}), ("/gzip", {}),
        ("/continue", {}), ("/304", validators)])
    assert [(status, body) for status, _, body in replies] == [
        (304, b""), (200, b"hello"), (301, b""), (200, b"hello world"), (200, b"hello, compressed"),
        (200, b"hi"), (304, b"")]
    assert connections == 1  # one kept-alive connection for all of them
    assert heads[0].startswith(b"GET /304 HTTP/1.1\r\nHost: localhost:PORT\r\n")
    assert b'If-None-Match: "v1"\r\n' in heads[0]


async def test_replies_that_end_the_connection_are_the_same_on_every_path() -> None:
    _, replies, connections = await _all_paths([
        ("/http10", {}), ("/304", {}), ("/close", {}), ("/304", {}), ("/eof", {}), ("/304", {})])
    assert [(status, body) for status, _, body in replies] == [
        (200, b"old!"), (304, b""), (200, b"bye"), (304, b""), (200, b"to the end"), (304, b"")]
    assert connections == 4


async def test_cookies_are_sent_back_through_lean_get() -> None:
    heads, replies, _ = await _all_paths([("/cookie", {}), ("/304", {}), ("/plain", {})])
    assert [status for status, _, _ in replies] == [200, 304, 200]
    assert b"Cookie" not in heads[0]
    assert all(b"Cookie: session=abc" in h for h in heads[1:])


async def test_a_closed_kept_alive_connection_is_tried_again() -> None:
    _, replies, connections = await _all_paths([("/plain", {}), ("/304", {}), ("/304", {})], drop_idle=True)
    assert [status for status, _, _ in replies] == [200, 304, 304]
    assert connections == 3


async def test_a_request_the_server_hangs_up_on_is_sent_once_more() -> None:
    heads, replies, connections = await _all_paths([("/plain", {}), ("/304", {}), ("/plain", {})], hang_up=True)
    assert [status for status, _, _ in replies] == [200, 304, 200]
    assert [h.split(b" ", 2)[1] for h in heads] == [b"/plain", b"/304", b"/304", b"/plain", b"/plain"]
    assert connections == 3


async def test_a_malformed_reply_is_the_same_error_on_every_path() -> None:
    errors = []
    for get in (_via_session, _via_lean, _via_raw):
        async with RawHTTPServer(host="localhost") as server:
            session = _loopback_session()
            try:
                with pytest.raises(aiohttp.ClientResponseError) as caught:
                    await get(session, server.url("/bad"), {})
                errors.append(str(caught.value).replace(str(server.port), "PORT"))
            finally:
                await session.close()
    assert errors[0] == errors[1] == errors[2]


async def test_raw_get_takes_the_connection_session_get_pooled() -> None:
    async with RawHTTPServer(host="localhost") as server:
        session = _loopback_session()
        try:
            await _via_session(session, server.url("/plain"), {})
            await _via_raw(session, server.url("/304"), {})
            await _via_lean(session, server.url("/plain"), {})
            await _via_raw(session, server.url("/304"), {})
        finally:
            await session.close()
    assert server.connections == 1 and len(server.heads) == 4


async def test_what_raw_get_leaves_to_lean_get() -> None:
    session = _loopback_session()
    try:
        url = URL("http://localhost:1/feed")
        plain = merged_headers(session, {})
        assert raw_head(session, url, plain) is not None
        assert raw_head(session, URL("http://user:pw@localhost:1/feed"), plain) is None
        for name in ("Host", "cookie", "Connection"):
            assert raw_head(session, url, merged_headers(session, {name: "x"})) is None
        session.cookie_jar.update_cookies({"a": "b"}, URL("http://localhost:1/"))
        assert raw_head(session, url, plain) is None
    finally:
        await session.close()
    skip = aiohttp.ClientSession(skip_auto_headers=["Accept-Encoding"])
    try:
        assert raw_head(skip, URL("http://localhost:1/"), CIMultiDict()) is None
    finally:
        await skip.close()


async def test_a_header_with_a_line_break_is_refused_as_aiohttp_refuses_it() -> None:
    session = _loopback_session()
    try:
        errors = []
        for get in (_via_lean, _via_raw):
            with pytest.raises(ValueError, match="control character") as caught:
                async with RawHTTPServer(host="localhost") as server:
                    await get(session, server.url("/304"), {"If-None-Match": 'a\r\nX-Injected: 1'})
            errors.append(str(caught.value))
        assert errors[0] == errors[1]
    finally:
        await session.close()


async def test_a_private_address_is_refused_before_any_request() -> None:
    async with RawHTTPServer(host="localhost") as server:
        session = new_session(Settings())  # loopback is not allowed
        try:
            result = await conditional_get(session, server.url("/304"), Settings(), etag='"v1"')
        finally:
            await session.close()
    assert type(result).__name__ == "FetchFailed"
    assert result.refused  # type: ignore[union-attr]
    assert server.connections == 0 and server.heads == []


async def test_conditional_get_takes_raw_get_for_a_304(monkeypatch: pytest.MonkeyPatch) -> None:
    responses: list[type] = []
    real = rawget._once  # noqa: SLF001

    async def spy(*args: object) -> RawResponse:
        response = await real(*args)  # type: ignore[arg-type]
        responses.append(type(response))
        return response

    async def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("lean_get used for a plain 304")

    monkeypatch.setattr(rawget, "_once", spy)
    monkeypatch.setattr(leanget, "lean_get", must_not_run)
    async with RawHTTPServer(host="localhost") as server:
        session = _loopback_session()
        try:
            settings = Settings(allow_networks="127.0.0.0/8")
            result = await conditional_get(session, server.url("/moved"), settings, etag='"v1"')
        finally:
            await session.close()
    assert type(result).__name__ == "NotModified"
    assert result.permanent_url == server.url("/304")
    assert responses == [RawResponse, RawResponse]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture
async def tls_session(certificate: tuple[Path, Path]) -> AsyncIterator[aiohttp.ClientSession]:
    client = ssl.create_default_context(cafile=str(certificate[0]))
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(Settings(allow_networks="127.0.0.0/8").allowed_networks,
                                                              set()), ssl=client)
    session = aiohttp.ClientSession(connector=connector, trust_env=False)
    yield session
    await session.close()


async def test_tls_replies_and_reuse(certificate: tuple[Path, Path], tls_session: aiohttp.ClientSession) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    async with RawHTTPServer(server_context, host="localhost") as server:
        replies = [await get(tls_session, server.url(path), {})
                   for get, path in ((_via_session, "/plain"), (_via_raw, "/304"), (_via_raw, "/gzip"))]
    assert [(status, body) for status, _, body in replies] == [(200, b"hello"), (304, b""), (200, b"hello, compressed")]
    assert server.connections == 1
    assert server.heads[1].startswith(b"GET /304 HTTP/1.1\r\nHost: localhost:%d\r\n" % server.port)


async def test_tls_with_an_untrusted_certificate_fails_on_raw_get(certificate: tuple[Path, Path]) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    async with RawHTTPServer(server_context, host="localhost") as server:
        session = _loopback_session()  # the system's CAs: the self-signed certificate is not trusted
        try:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await _via_raw(session, server.url("/304"), {})
        finally:
            await session.close()


async def test_the_connection_keeps_its_parser_between_raw_replies_only() -> None:
    """One parser for raw_get's replies one after another on a connection; a new one
    after lean_get set up its own (decision 156)."""
    def parser_of(session: aiohttp.ClientSession) -> object:
        (conns,) = session.connector._conns.values()  # type: ignore[union-attr]  # noqa: SLF001
        (protocol, _), = conns
        return protocol._parser  # noqa: SLF001

    async with RawHTTPServer(host="localhost") as server:
        session = _loopback_session()
        try:
            seen = []
            for get, path in ((_via_raw, "/304"), (_via_raw, "/chunked"), (_via_raw, "/gzip"), (_via_lean, "/304"),
                              (_via_raw, "/304"), (_via_raw, "/plain")):
                await get(session, server.url(path), {})
                seen.append(parser_of(session))
        finally:
            await session.close()
    assert seen[0] is seen[1] is seen[2]
    assert seen[3] is not seen[2] and seen[4] is not seen[3] and seen[5] is seen[4]
    assert server.connections == 1
