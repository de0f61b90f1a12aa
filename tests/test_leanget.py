"""lean_get against session.get on one loopback server: the same bytes sent, the same outcomes.

The server is raw asyncio (no aiohttp on that side), so what is compared is what each
client path writes on the wire: request line and headers, cookies sent back, a closed
kept-alive connection, a second try after the server hung up on a request, and the
error of a refused port.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from yarl import URL

import ingest.poll.fetch as fetch_module
import ingest.poll.leanget as leanget
from ingest.poll.fetch import conditional_get, new_session
from ingest.poll.leanget import can_lean, lean_get, lean_supported, merged_headers
from ingest.settings import Settings
from tests.rawhttp import RawHTTPServer

# The comparisons below call lean_get directly. On an aiohttp release it was not
# checked against (`make test-latest` after a new release) the service does not use it,
# so they skip, saying so; LEAN_GET_CHECK=1 runs them anyway, to decide on widening
# CHECKED_AIOHTTP.
checked_release = pytest.mark.skipif(
    not lean_supported() and not os.environ.get("LEAN_GET_CHECK"),
    reason=f"aiohttp {aiohttp.__version__} is not in leanget.CHECKED_AIOHTTP: polls use session.get")

Get = Callable[[aiohttp.ClientSession, str, dict[str, str]], Awaitable[tuple[int, dict[str, str], bytes]]]


async def _via_session(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[
        int, dict[str, str], bytes]:
    async with session.get(url, headers=headers, allow_redirects=False) as response:
        return response.status, dict(response.headers), await response.read()


async def _via_lean(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[
        int, dict[str, str], bytes]:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    async with await lean_get(session, URL(url), merged_headers(session, headers), timeout) as response:
        return response.status, dict(response.headers), await response.read()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = new_session(Settings(allow_networks="127.0.0.0/8"))
    yield s
    await s.close()


async def _heads_for(get: Get, sequence: list[tuple[str, dict[str, str]]], drop_idle: bool = False,
                     hang_up: bool = False) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    async with RawHTTPServer() as server:
        server.drop_idle, server.hang_up = drop_idle, hang_up
        session = new_session(Settings(allow_networks="127.0.0.0/8"))
        outcomes = []
        try:
            for path, headers in sequence:
                # By name: aiohttp's cookie jar keeps no cookies of an IP address.
                status, _, body = await get(session, server.url(path, "localhost"), headers)
                outcomes.append((status, body))
                if drop_idle:
                    await asyncio.sleep(0.2)  # the server has closed the pooled connection
        finally:
            await session.close()
        port = str(server.port).encode()
        return [h.replace(port, b"PORT") for h in server.heads], outcomes


async def _both_paths(sequence: list[tuple[str, dict[str, str]]], drop_idle: bool = False,
                      hang_up: bool = False) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    """The sequence by session.get, then by lean_get, each on a fresh server: the request
    bytes and the outcomes must be the same; lean_get's are returned."""
    plain_heads, plain_outcomes = await _heads_for(_via_session, sequence, drop_idle, hang_up)
    lean_heads, lean_outcomes = await _heads_for(_via_lean, sequence, drop_idle, hang_up)
    assert lean_heads == plain_heads
    assert lean_outcomes == plain_outcomes
    return lean_heads, lean_outcomes


async def test_the_session_can_go_lean_on_a_checked_release(session: aiohttp.ClientSession) -> None:
    assert can_lean(session) is lean_supported()


def test_only_checked_aiohttp_releases_go_lean() -> None:
    assert lean_supported("3.14.5") and lean_supported("3.14.0rc1")
    assert not lean_supported("3.15.0") and not lean_supported("3.9.5") and not lean_supported("4.0.0")
    assert not lean_supported("not-a-version") and not lean_supported("")


async def test_on_an_unchecked_release_the_fetch_takes_session_get(
        session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a user of `pip install .` meets when a newer aiohttp is out: the same fetch,
    through the public path, and lean_get never entered."""
    async def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("lean_get used on an unchecked aiohttp release")

    monkeypatch.setattr(leanget, "_LEAN_ON", False)
    monkeypatch.setattr(leanget, "lean_get", must_not_run)
    monkeypatch.setattr(fetch_module, "raw_get", must_not_run)
    assert not can_lean(session)
    async with RawHTTPServer() as server:
        settings = Settings(allow_networks="127.0.0.0/8")
        result = await conditional_get(session, server.url("/moved"), settings, etag='"v1"')
        assert type(result).__name__ == "NotModified"
        assert result.permanent_url == server.url("/304")
        assert all(b'If-None-Match: "v1"' in h for h in server.heads)


async def test_a_session_with_traces_is_not_lean() -> None:
    s = aiohttp.ClientSession(trace_configs=[aiohttp.TraceConfig()])
    try:
        assert not can_lean(s)
    finally:
        await s.close()


@checked_release
async def test_same_request_bytes_and_cookies_as_session_get() -> None:
    sequence = [("/cookie", {}), ("/304", {"If-None-Match": '"v1"', "If-Modified-Since": "Mon, 05 Jan 2026"}),
                ("/moved", {}), ("/plain", {})]
    lean_heads, outcomes = await _both_paths(sequence)
    assert outcomes == [(200, b"ok"), (304, b""), (301, b""), (200, b"hello")]
    # The cookie the server set is sent back on the later requests, by both paths.
    assert all(b"Cookie: session=abc" in h for h in lean_heads[1:])
    assert b"If-None-Match: \"v1\"" in lean_heads[1]


@checked_release
async def test_a_closed_kept_alive_connection_is_tried_again_once() -> None:
    sequence: list[tuple[str, dict[str, str]]] = [("/plain", {}), ("/plain", {}), ("/304", {})]
    _, outcomes = await _both_paths(sequence, drop_idle=True)
    assert outcomes == [(200, b"hello"), (200, b"hello"), (304, b"")]


@checked_release
async def test_a_request_the_server_hangs_up_on_is_sent_once_more_on_a_new_connection() -> None:
    sequence: list[tuple[str, dict[str, str]]] = [("/plain", {}), ("/304", {}), ("/plain", {})]
    lean_heads, outcomes = await _both_paths(sequence, hang_up=True)
    assert outcomes == [(200, b"hello"), (304, b""), (200, b"hello")]
    # Each later request was sent twice: on the kept-alive connection, then on a new one.
    assert [h.split(b" ", 2)[1] for h in lean_heads] == [b"/plain", b"/304", b"/304", b"/plain", b"/plain"]


@checked_release
async def test_a_refused_port_is_a_connector_error(session: aiohttp.ClientSession) -> None:
    async with RawHTTPServer() as server:
        url = server.url("/plain")
    with pytest.raises(aiohttp.ClientConnectorError):
        await _via_lean(session, url, {})


@checked_release
async def test_conditional_get_on_the_lean_path_sees_the_304(session: aiohttp.ClientSession) -> None:
    async with RawHTTPServer() as server:
        settings = Settings(allow_networks="127.0.0.0/8")
        result = await conditional_get(session, server.url("/moved"), settings, etag='"v1"')
        assert type(result).__name__ == "NotModified"
        assert result.permanent_url == server.url("/304")
        assert [h.split(b"\r\n")[0] for h in server.heads] == [b"GET /moved HTTP/1.1", b"GET /304 HTTP/1.1"]
        assert all(b'If-None-Match: "v1"' in h for h in server.heads)
