"""A loopback news site for the full-text tests (#15): article pages, a summary-only
feed pointing at them, robots.txt, and the hostile cases (a page past the size limit,
a redirect to a private address, a 402).

Routes (all on 127.0.0.1):
  /feed.xml              RSS 2.0, one summary-only item per page below
  /robots.txt            `robots` (404 when None)
  /view.php?ud=...       the Korea Herald-like seed page
  /news/<name>           a page of tests/data/articles/<name>.html
  /news/big              an article page of `big_bytes` bytes
  /news/private          302 to http://10.0.0.1/ (the guard must refuse it)
  /news/closed           402 Payment Required
  /news/private-area     disallowed by the default robots.txt
  /flaky.xml             a feed of /news/flaky (503 twice, then the JSON-LD page) and
                         /news/down (always 503)
  /hostile.xml           a feed of /news/hostile and /news/hostile2, pages whose reading
                         takes far longer than any deadline (`hostile_page`, within the
                         size limit), and /news/opengraph-only

Article pages from files carry an ETag and a Last-Modified and answer a matching
If-None-Match (else If-Modified-Since) with 304; `not_modified` counts those by path.
`revision` > 0 changes every entry's summary in the feeds (so each entry is new
or changed again and its page is fetched again).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web

from tests.threaded_app import ThreadedApp

PAGES = Path(__file__).parent / "data" / "articles"
SEED_TEASER = ("South Korea and China held working-level defense talks in Seoul on Thursday on ways to "
               "promote peace on the Korean Peninsula and enhance bilateral cooperation, Seoul's defense "
               "ministry said. Read more")
# (path, title, summary, pubDate or None): what the feed says of each page.
ITEMS = [
    ("/view.php?ud=20200116000812&utm_source=rss", "S. Korea, China hold working-level defense talks over peninsula",
     SEED_TEASER, "Thu, 16 Jan 2020 21:21:00 +0900"),
    ("/news/jsonld-only", "", "The harbour reopened to shipping on Tuesday morning.", None),
    ("/news/opengraph-only", "Library opens late", "The city library will stay open until midnight.", None),
    ("/news/paywalled", "Markets: the quarter ahead", "Investors head into the second quarter.", None),
    ("/news/big", "A very long page", "This page is larger than the limit.", None),
    ("/news/private", "A page that redirects inward", "It redirects to a private address.", None),
    ("/news/closed", "Subscribers only", "Behind a 402.", None),
    ("/news/private-area", "Not for robots", "robots.txt says no.", None),
]
# A feed whose first page cannot be read in time, beside a normal one.
HOSTILE_ITEMS = [
    ("/news/hostile", "A page slow to read", "Its page keeps an extractor busy.", None),
    ("/news/hostile2", "Another page slow to read", "Its page keeps an extractor busy too.", None),
    ("/news/opengraph-only", "Library opens late", "The city library will stay open until midnight.", None),
]
# A second feed: a page that fails twice then works, and one that always fails.
FLAKY_ITEMS = [
    ("/news/flaky", "Harbour reopens", "The harbour reopened.", None),
    ("/news/down", "Server down", "This server always fails.", None),
]
# path -> (entries, guid prefix)
FEEDS = {"/feed.xml": (ITEMS, "a"), "/hostile.xml": (HOSTILE_ITEMS, "h"), "/flaky.xml": (FLAKY_ITEMS, "f")}
ROBOTS = "User-agent: *\nDisallow: /news/private-area\n"
LAST_MODIFIED = "Thu, 16 Jan 2020 12:21:00 GMT"


def hostile_page(blocks: int = 26_000) -> bytes:
    """An article page that keeps the extractor busy far past any deadline: `blocks`
    short paragraphs, each in two <div>s (~1.9 MB, within the limit the test sets).
    trafilatura's jusText fallback compares each paragraph with its neighbours in pure
    Python, quadratically: ~1.8 s for 5,000 blocks, ~20 s for 20,000 here."""
    block = "<div><div><p>Some words in a sentence of a paragraph here.</p></div></div>"
    return ("<html><head><title>Hostile</title></head><body>" + block * blocks + "</body></html>").encode()


class ArticleSite(ThreadedApp):
    name = "article-site"

    def __init__(self) -> None:
        super().__init__()
        self.robots: str | None = ROBOTS
        self.big_bytes = 3_000_000
        self.hits: dict[str, int] = {}
        self.flaky_failures = 2  # /news/flaky answers 503 this many times first
        self.not_modified: dict[str, int] = {}
        self.revision = 0
        self.hostile = hostile_page()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def feed(self, entries: list[tuple[str, str, str, str | None]] = ITEMS, prefix: str = "a") -> bytes:
        items = []
        for i, (path, title, summary, date) in enumerate(entries):
            pub = f"<pubDate>{date}</pubDate>" if date else ""
            link = self.url(path).replace("&", "&amp;")
            summary = f"{summary} (revision {self.revision})" if self.revision else summary
            items.append(f"<item><title>{title}</title><link>{link}</link>"
                         f"<guid isPermaLink=\"false\">{prefix}-{i}</guid>{pub}"
                         f"<description>{summary}</description></item>")
        return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel>"
                "<title>Loopback News</title><link>" + self.url("/") + "</link><language>en</language>"
                + "".join(items) + "</channel></rss>").encode()

    async def handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        html = "text/html; charset=utf-8"
        if path in FEEDS:
            entries, prefix = FEEDS[path]
            return web.Response(body=self.feed(entries, prefix), headers={"Content-Type": "application/rss+xml"})
        if path == "/news/down" or (path == "/news/flaky" and self.hits[path] <= self.flaky_failures):
            return web.Response(status=503, text="try later")
        if path == "/news/flaky":
            return web.Response(body=(PAGES / "jsonld-only.html").read_bytes(), headers={"Content-Type": html})
        if path == "/robots.txt":
            if self.robots is None:
                raise web.HTTPNotFound()
            return web.Response(text=self.robots)
        if path == "/view.php":
            return self.page(request, (PAGES / "koreaherald-20200116000812.html").read_bytes())
        if path in ("/news/hostile", "/news/hostile2"):
            return web.Response(body=self.hostile, headers={"Content-Type": html})
        if path == "/news/big":
            filler = b"<p>" + b"Filler paragraph of a page that never ends. " * 40 + b"</p>\n"
            body = b"<html><body><article>" + filler * (self.big_bytes // len(filler) + 1) + b"</article></body></html>"
            return web.Response(body=body, headers={"Content-Type": html})
        if path == "/news/private":
            raise web.HTTPFound("http://10.0.0.1/news/secret")
        if path == "/news/closed":
            return web.Response(status=402, text="Payment required")
        name = path.removeprefix("/news/")
        page = PAGES / f"{name}.html"
        if path.startswith("/news/") and page.is_file():
            return self.page(request, page.read_bytes())
        raise web.HTTPNotFound()

    def page(self, request: web.Request, body: bytes) -> web.Response:
        """An HTML page with validators; 304 when the request's validators match."""
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        headers = {"Content-Type": "text/html; charset=utf-8", "ETag": etag, "Last-Modified": LAST_MODIFIED}
        match = request.headers.get("If-None-Match")
        if (match == etag) if match is not None else request.headers.get("If-Modified-Since") == LAST_MODIFIED:
            self.not_modified[request.path] = self.not_modified.get(request.path, 0) + 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers=headers)
