"""A real HTTP server on 127.0.0.1 that serves feed files several ways.

It runs an aiohttp app on its own event loop in a thread, so both plain
tests (CLI subprocesses) and async tests can use it for a whole session.
Routes:
  /feeds/<name>    a file of tests/data/feeds (stand-ins for the real feeds, one per format)
  /data/<name>     a file of tests/data
  /status/<code>   an empty answer with that status
  /page.html       an HTML page (not a feed)
  /custom/<name>   whatever a test put there with `serve()`
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.threaded_app import ThreadedApp

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


class FeedServer(ThreadedApp):
    name = "feed-server"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.feeds_dir = data_dir / "feeds"
        self.data_dir = data_dir
        self.custom: dict[str, Custom] = {}
        self.hits: dict[str, int] = {}

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

    async def handler(self, request: web.Request) -> web.StreamResponse:
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
