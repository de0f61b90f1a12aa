"""A raw asyncio HTTP/1.1 server on 127.0.0.1 for the client-path tests (test_leanget, test_rawget).

No aiohttp on this side, so what a test compares is what each client path writes on
the wire and reads back. It answers by path (ANSWERS; anything else a plain 200),
records every request head and counts connections, and can drop kept-alive
connections or hang up on a connection's second request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl

_GZ = gzip.compress(b"hello, compressed")
ANSWERS: dict[bytes, bytes] = {
    b"/cookie": b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nContent-Length: 2\r\n\r\nok",
    b"/304": b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n',
    b"/moved": b"HTTP/1.1 301 Moved Permanently\r\nLocation: /304\r\nContent-Length: 0\r\n\r\n",
    b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"/gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(_GZ) + _GZ,
    b"/http10": b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!",
    b"/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye",
    b"/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"/bad": b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
}
_PLAIN = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
_UNTIL_EOF = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end"


class RawHTTPServer:
    """Answers by path; records every request head and counts connections; can drop
    kept-alive connections or hang up on a connection's second request."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.host = host  # what url() names: "localhost" for a certificate's name or a cookie jar
        self.heads: list[bytes] = []
        self.connections = 0
        self.drop_idle = False  # close each connection right after its first answer
        self.hang_up = False  # read a connection's second request, then close it unanswered
        self.ssl_context = ssl_context
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RawHTTPServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    def url(self, path: str, host: str | None = None) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                if self.hang_up and answered:
                    break
                answered += 1
                path = head.split(b" ", 2)[1]
                if path == b"/eof":
                    writer.write(_UNTIL_EOF)
                    await writer.drain()
                    break
                writer.write(ANSWERS.get(path, _PLAIN))
                await writer.drain()
                if path in (b"/http10", b"/close", b"/bad") or self.drop_idle:
                    await asyncio.sleep(0.05)
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
