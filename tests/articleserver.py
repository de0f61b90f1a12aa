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
"""

from __future__ import annotations

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
# A second feed: a page that fails twice then works, and one that always fails.
FLAKY_ITEMS = [
    ("/news/flaky", "Harbour reopens", "The harbour reopened.", None),
    ("/news/down", "Server down", "This server always fails.", None),
]
ROBOTS = "User-agent: *\nDisallow: /news/private-area\n"


class ArticleSite(ThreadedApp):
    name = "article-site"

    def __init__(self) -> None:
        super().__init__()
        self.robots: str | None = ROBOTS
        self.big_bytes = 3_000_000
        self.hits: dict[str, int] = {}
        self.flaky_failures = 2  # /news/flaky answers 503 this many times first

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def feed(self, entries: list[tuple[str, str, str, str | None]] = ITEMS, prefix: str = "a") -> bytes:
        items = []
        for i, (path, title, summary, date) in enumerate(entries):
            pub = f"<pubDate>{date}</pubDate>" if date else ""
            link = self.url(path).replace("&", "&amp;")
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
        if path == "/feed.xml":
            return web.Response(body=self.feed(), headers={"Content-Type": "application/rss+xml"})
        if path == "/flaky.xml":
            return web.Response(body=self.feed(FLAKY_ITEMS, "f"), headers={"Content-Type": "application/rss+xml"})
        if path == "/news/down" or (path == "/news/flaky" and self.hits[path] <= self.flaky_failures):
            return web.Response(status=503, text="try later")
        if path == "/news/flaky":
            return web.Response(body=(PAGES / "jsonld-only.html").read_bytes(), headers={"Content-Type": html})
        if path == "/robots.txt":
            if self.robots is None:
                raise web.HTTPNotFound()
            return web.Response(text=self.robots)
        if path == "/view.php":
            body = (PAGES / "koreaherald-20200116000812.html").read_bytes()
            return web.Response(body=body, headers={"Content-Type": html})
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
            return web.Response(body=page.read_bytes(), headers={"Content-Type": html})
        raise web.HTTPNotFound()
