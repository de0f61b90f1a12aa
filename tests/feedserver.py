"""A real HTTP server on 127.0.0.1 that serves feed files several ways.

It runs an aiohttp app on its own event loop in a thread, so both plain
tests (CLI subprocesses) and async tests can use it for a whole session.
Routes:
  /feeds/<name>    a file of ../shared/fixtures/feeds
  /data/<name>     a file of tests/data
  /status/<code>   an empty answer with that status
  /page.html       an HTML page (not a feed)
  /custom/<name>   whatever a test put there with `serve()`
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

_TYPES = {".xml": "application/xml", ".atom": "application/atom+xml", ".json": "application/feed+json",
          ".rss": "application/rss+xml", ".html": "text/html; charset=utf-8"}

PAGE = b"""<!doctype html><html><head><title>Not a feed</title></head>
<body><h1>Hello</h1><p>This is a web page.<br></p></body></html>"""


@dataclass
class Custom:
    body: bytes
    content_type: str
    status: int = 200
    delays: list[float] = field(default_factory=list)  # seconds to stall, one per request, in order


class FeedServer:
    def __init__(self, feeds_dir: Path, data_dir: Path) -> None:
        self.feeds_dir = feeds_dir
        self.data_dir = data_dir
        self.custom: dict[str, Custom] = {}
        self.hits: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def serve(self, name: str, body: bytes, content_type: str = "application/rss+xml", status: int = 200,
              delays: list[float] | None = None) -> str:
        """Serve `body` at /custom/<name>; `delays` stalls the first requests (a slow publisher)."""
        self.custom[name] = Custom(body, content_type, status, list(delays or []))
        return self.url(f"custom/{name}")

    def _file(self, root: Path, name: str) -> web.Response:
        path = (root / name).resolve()
        if root.resolve() not in path.parents or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(), content_type=None,
                            headers={"Content-Type": _TYPES.get(path.suffix, "application/octet-stream")})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        kind, _, name = path.lstrip("/").partition("/")
        if kind == "feeds":
            return self._file(self.feeds_dir, name)
        if kind == "data":
            return self._file(self.data_dir, name)
        if kind == "status":
            return web.Response(status=int(name), text=f"status {name}")
        if kind == "page.html":
            return web.Response(body=PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
        if kind == "custom" and name in self.custom:
            c = self.custom[name]
            if c.delays:
                await asyncio.sleep(c.delays.pop(0))
            return web.Response(body=c.body, status=c.status, headers={"Content-Type": c.content_type})
        raise web.HTTPNotFound()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        # Hanging handlers (slow paths) must not hold up shutdown; a client that
        # disconnects cancels its handler, as a real server would stop working for it.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="feed-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("feed server did not start")

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._runner:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
