"""Hostile servers, on loopback servers this module starts (docs/reliability.md).

Each misbehaviour gets a clear FetchFailed (never an exception, never a hang
past fetch_timeout, never more than max_body_bytes held): garbage instead of
HTTP, a lying Content-Length, slowloris bodies and headers, header floods,
redirect loops, and gzip/brotli bombs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import brotli
import pytest

from ingest.models import Fetched, FetchFailed
from ingest.poll.fetch import conditional_get, new_session
from ingest.settings import Settings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def hostile_settings() -> Settings:
    return Settings(allow_networks="127.0.0.0/8", fetch_timeout=2.0, connect_timeout=2.0,
                    max_body_bytes=1_000_000)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        return b""


@dataclasses.dataclass
class RawServer:
    """A TCP server on 127.0.0.1 answering every connection with `handler` (no HTTP library)."""

    server: asyncio.Server
    requests: list[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/feed"


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> RawServer:
        requests: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            requests.append(await _read_request(reader))
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        return RawServer(server, requests)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def _fetch(url: str, settings: Settings) -> tuple[Fetched | FetchFailed, float]:
    session = new_session(settings)
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(conditional_get(session, url, settings), 30)
    finally:
        await session.close()
    assert isinstance(result, (Fetched, FetchFailed))
    return result, time.monotonic() - started


async def test_garbage_instead_of_http_is_quoted_short_and_escaped(
    raw_server: Callable[[Handler], Awaitable[RawServer]], hostile_settings: Settings,
) -> None:
    """#12 item 9: 170 KB of raw bytes used to land in the error, the log and last_error."""
    async def garbage(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\x01garbage<script>\x1b[31m" * 5000 + b"\r\n\r\n")
        await writer.drain()

    server = await raw_server(garbage)
    result, _ = await _fetch(server.url, hostile_settings)
    assert isinstance(result, FetchFailed)
    assert len(result.error) < 700, len(result.error)
    assert result.error.isprintable()
    assert "\x1b" not in result.error and "\x00" not in result.error
    assert "more characters not shown" in result.error


async def test_a_lying_content_length_is_a_broken_body(
    raw_server: Callable[[Handler], Awaitable[RawServer]], hostile_settings: Settings,
) -> None:
    async def liar(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                     b"Content-Length: 100000\r\n\r\n<rss version='2.0'><channel>")
        await writer.drain()

    server = await raw_server(liar)
    result, elapsed = await _fetch(server.url, hostile_settings)
    assert isinstance(result, FetchFailed) and "broken response body" in result.error, result
    assert elapsed < 10


async def test_a_declared_oversize_body_is_refused_before_reading(
    raw_server: Callable[[Handler], Awaitable[RawServer]], hostile_settings: Settings,
) -> None:
    async def huge(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        await asyncio.sleep(5)

    server = await raw_server(huge)
    result, elapsed = await _fetch(server.url, hostile_settings)
    assert isinstance(result, FetchFailed) and "exceeds the limit" in result.error
    assert elapsed < 2


@pytest.mark.parametrize("phase", ["headers", "body"])
async def test_slowloris_is_cut_off_at_fetch_timeout(
    raw_server: Callable[[Handler], Awaitable[RawServer]], hostile_settings: Settings, phase: str,
) -> None:
    async def drip(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        if phase == "body":
            writer.write(b"Content-Length: 1000000\r\n\r\n")
        for _ in range(100):  # bounded: 20 s at most, well past the 2 s timeout
            writer.write(b"X-A: b\r\n" if phase == "headers" else b"<")
            await writer.drain()
            await asyncio.sleep(0.2)

    server = await raw_server(drip)
    result, elapsed = await _fetch(server.url, hostile_settings)
    assert isinstance(result, FetchFailed) and "timed out" in result.error, result
    assert elapsed < 2.0 + 3  # the timeout plus scheduling slack under load


@pytest.mark.parametrize("flood", ["many headers", "one huge header", "a huge status line"])
async def test_header_floods_are_refused(
    raw_server: Callable[[Handler], Awaitable[RawServer]], hostile_settings: Settings, flood: str,
) -> None:
    head = {
        "many headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(20_000)),
        "one huge header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 1_000_000 + b"\r\n",
        "a huge status line": b"HTTP/1.1 200 " + b"O" * 1_000_000 + b"\r\n",
    }[flood]

    async def flooder(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head + b"Content-Length: 2\r\n\r\nok")
        await writer.drain()

    server = await raw_server(flooder)
    result, _ = await _fetch(server.url, hostile_settings)
    assert isinstance(result, FetchFailed), result
    assert len(result.error) < 700


async def test_redirect_loops_stop_after_the_limit(
    raw_server: Callable[[Handler], Awaitable[RawServer]], hostile_settings: Settings,
) -> None:
    async def loop(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /feed\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    server = await raw_server(loop)
    result, _ = await _fetch(server.url, hostile_settings)
    assert isinstance(result, FetchFailed) and "more than 10 redirects" in result.error
    assert len(server.requests) == 11  # the first request and ten hops, then it stopped


_BOMB = b"<rss>" + b"\0" * 30_000_000
_PACKED = {"gzip": gzip.compress(_BOMB, 6), "br": brotli.compress(_BOMB, quality=5)}


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_compression_bombs_are_cut_off_by_decoded_size(
    raw_server: Callable[[Handler], Awaitable[RawServer]], hostile_settings: Settings, encoding: str,
) -> None:
    """30 MB of zeros compress to ~30 KB (gzip) / a few hundred bytes (brotli); the
    1 MB limit counts decoded bytes, so the fetch stops early, in bounded memory."""
    packed = _PACKED[encoding]
    assert len(packed) < 100_000

    async def bomb(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                     b"Content-Encoding: %s\r\nContent-Length: %d\r\n\r\n" % (encoding.encode(), len(packed))
                     + packed)
        await writer.drain()

    server = await raw_server(bomb)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result, _ = await _fetch(server.url, hostile_settings)
    assert isinstance(result, FetchFailed) and "exceeds the limit" in result.error, result
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20 * 1024, grown_kib  # never the 30 MB decoded
