"""A loopback feed farm: one aiohttp app on 127.0.0.1, .2 and .3 (three "hosts").

Behaviour is chosen by the path, so a test states what a publisher does in
the URL it registers:
  /feed/<name>              ETag + Last-Modified; answers 304 to matching validators
  /plain/<name>             the body, no validators
  /r301|r302|r307|r308/<name>   redirect to /feed/<name> with that status
  /status/<code>?retry_after=N  an empty answer with that status (and Retry-After)
  /slow/<seconds>/<name>    the body after a pause
  /uaslow/<ua>/<seconds>/<name>  slow only for clients whose User-Agent contains <ua>
  /gzip|br|deflate/<name>   the body compressed, with Content-Encoding
  /big/<bytes>              a chunked body of that size, no Content-Length
  /page                     an HTML page advertising /feed/a.xml and /feed/b.xml
  /to?url=U                 302 to any URL U
<name> is a key of `farm.feeds` (bytes); every request is recorded in `farm.log`.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import brotli
from aiohttp import web

from tests.threaded_app import ThreadedApp

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
LAST_MODIFIED = "Mon, 06 Jan 2025 10:00:00 GMT"


@dataclass(frozen=True)
class Hit:
    host: str
    path: str
    user_agent: str
    if_none_match: str | None
    if_modified_since: str | None
    start: float
    status: int
    via_proxy: bool = False  # the request line carried an absolute URL (a forward proxy's form)


def sample_feed(name: str, items: int = 3, text: str = "Body") -> bytes:
    body = "".join(
        f"<item><guid>{name}-{i}</guid><title>{name} story {i}</title>"
        f"<link>http://news.example/{name}/{i}</link>"
        f"<pubDate>Mon, 06 Jan 2025 {10 + i:02d}:00:00 GMT</pubDate>"
        f"<description>{text} {i} of {name}.</description></item>"
        for i in range(items)
    )
    return f'<rss version="2.0"><channel><title>Feed {name}</title>{body}</channel></rss>'.encode()


class Farm(ThreadedApp):
    name = "feed-farm"

    def __init__(self, feeds_dir: Path | None = None) -> None:
        super().__init__(HOSTS)
        self.feeds: dict[str, bytes] = {}
        self.feeds_dir = feeds_dir
        self.log: list[Hit] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}

    # -- helpers for tests ------------------------------------------------
    def url(self, path: str, host: str = HOSTS[0]) -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"

    def hits(self, path_part: str) -> list[Hit]:
        return [h for h in list(self.log) if path_part in h.path]

    def reset(self) -> None:
        self.log.clear()
        self.feeds.clear()
        self.max_in_flight.clear()

    def _body(self, name: str) -> bytes:
        if name in self.feeds:
            return self.feeds[name]
        if self.feeds_dir and (self.feeds_dir / name).is_file():
            return (self.feeds_dir / name).read_bytes()
        if name.endswith(".xml"):
            return sample_feed(name.removesuffix(".xml"))
        raise web.HTTPNotFound()

    # -- the app --------------------------------------------------------------
    async def handler(self, request: web.Request) -> web.StreamResponse:
        host = request.host
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), self.in_flight[host])
        start = time.monotonic()
        status = 500
        try:
            response = await self._respond(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            self.in_flight[host] -= 1
            self.log.append(Hit(host.split(":")[0], request.path, request.headers.get("User-Agent", ""),
                                request.headers.get("If-None-Match"),
                                request.headers.get("If-Modified-Since"), start, status,
                                request.raw_path.startswith("http")))

    async def _respond(self, request: web.Request) -> web.StreamResponse:  # noqa: C901
        parts = request.path.strip("/").split("/")
        kind, rest = parts[0], parts[1:]
        if kind == "feed":
            body = self._body(rest[0])
            etag = '"' + hashlib.md5(body).hexdigest() + '"'
            if request.headers.get("If-None-Match") == etag or (
                    "If-None-Match" not in request.headers
                    and request.headers.get("If-Modified-Since") == LAST_MODIFIED):
                return web.Response(status=304, headers={"ETag": etag})
            return web.Response(body=body, headers={"Content-Type": "application/rss+xml", "ETag": etag,
                                                    "Last-Modified": LAST_MODIFIED})
        if kind == "plain":
            return web.Response(body=self._body(rest[0]), headers={"Content-Type": "application/rss+xml"})
        if kind in ("r301", "r302", "r307", "r308"):
            return web.Response(status=int(kind[1:]), headers={"Location": f"/feed/{rest[0]}"})
        if kind == "status":
            headers = {}
            if "retry_after" in request.query:
                headers["Retry-After"] = request.query["retry_after"]
            return web.Response(status=int(rest[0]), text="no", headers=headers)
        if kind == "slow":
            await asyncio.sleep(float(rest[0]))
            return web.Response(body=self._body(rest[1]), headers={"Content-Type": "application/rss+xml"})
        if kind == "uaslow":
            if rest[0] in request.headers.get("User-Agent", ""):
                await asyncio.sleep(float(rest[1]))
            return web.Response(body=self._body(rest[2]), headers={"Content-Type": "application/rss+xml"})
        if kind in ("gzip", "br", "deflate"):
            raw = self._body(rest[0])
            packed = {"gzip": gzip.compress, "br": brotli.compress, "deflate": zlib.compress}[kind](raw)
            return web.Response(body=packed, headers={"Content-Type": "application/rss+xml",
                                                      "Content-Encoding": kind})
        if kind == "big":
            response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
            await response.prepare(request)
            remaining = int(rest[0])
            chunk = b"<rss>" + b" " * 65536
            while remaining > 0:
                await response.write(chunk[:remaining])
                remaining -= len(chunk)
            await response.write_eof()
            return response
        if kind == "page":
            html = ('<!doctype html><html><head><title>Site</title>'
                    '<link rel="alternate" type="application/rss+xml" title="All news" href="/feed/a.xml">'
                    '<link rel="alternate" type="application/atom+xml" title="Sports" href="feed/b.xml">'
                    '<link rel="stylesheet" href="/s.css"></head><body>Hi</body></html>')
            return web.Response(text=html, content_type="text/html")
        if kind == "to":
            return web.Response(status=302, headers={"Location": request.query["url"]})
        raise web.HTTPNotFound()
