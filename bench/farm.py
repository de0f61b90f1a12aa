"""A deterministic loopback feed farm for the benchmarks, run in its own process.

N feeds x K news items (~2.5 KB each), every byte a pure function of
(seed, feed number, round): feeds with an even number are RSS 2.0, odd ones
Atom 1.0. Every feed answers with an ETag and a Last-Modified and honours
both (304), and is gzip-compressed when the client accepts it. The round
is the farm's only state: in round 1 a deterministic fraction (`--changed`)
of the feeds gains `--new-items` new items (the oldest ones drop out, as
publishers do), and in each round from 2 on every feed does. Knobs for added latency and for a fraction of
requests answered 503 make slow and failing publishers.

With `--summary-only` (#15) the items carry a one-sentence teaser instead of
their story, and their link leads to an article page the farm serves itself:
60-200 KB of HTML with the boilerplate news sites have (bench/pages.py), with
an ETag, a Last-Modified, 304 and gzip like the feeds, rendered ahead with
the round's documents (under a millisecond a page, ~4 KB compressed).

    GET /feed/<n>.xml          feed n (RSS or Atom by n's parity)
    GET /article/<n>/<i>.html  item i's article page (--summary-only)
    GET /robots.txt            allows everything
    GET /opml?host=H           an OPML file of every feed, as seen from host H
    POST /control?round=R      switch to round R (the answer says which feeds changed)
    GET /stats                 requests served, by status

Run: .venv/bin/python bench/farm.py --feeds 1000 --items 30 [--port 0]
(prints the port, then serves until killed). `bench/suite.py` starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import random
import socket
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402

from bench.pages import PAGE_MAX_BYTES, PAGE_MIN_BYTES, make_page  # noqa: E402

__all__ = ["Farm", "FarmSpec", "article_page", "changed_in_round", "failing_in_round", "feed_body", "main",
           "newest_item", "page_url", "teaser"]

_WORDS = (
    "government minister said on monday that the new policy would take effect next month after "
    "parliament approved the budget economy growth inflation rate central bank officials expect "
    "markets reacted sharply while analysts warned of risks to exports and jobs in the region "
    "police reported the incident late on tuesday witnesses described heavy rain and flooding in "
    "several districts residents were evacuated as emergency services worked through the night "
    "the company announced quarterly results beating forecasts shares rose in early trading "
    "researchers published a study showing climate data from satellites over two decades "
    "football club won the championship final in front of a record crowd at the stadium coach "
    "election campaign candidates debated healthcare education taxes and housing costs voters"
).split()
_EPOCH = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FarmSpec:
    """Everything the farm's bytes depend on."""

    feeds: int = 1000
    items: int = 30
    changed: float = 0.1  # fraction of feeds with new items in each round > 0
    new_items: int = 3  # items a changed feed gains in a round
    item_bytes: int = 2500  # approximate size of one item's XML
    seed: int = 1
    latency_ms: float = 0.0  # added before every answer
    error_rate: float = 0.0  # fraction of (feed, round) pairs answered 503
    summary_only: bool = False  # items carry a teaser; the story is on the farm's article page


def _unit(seed: int, *parts: int) -> float:
    """A deterministic number in [0, 1) for the given parts."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def changed_in_round(spec: FarmSpec, feed: int, round_: int) -> bool:
    """Round 0: the first documents; round 1: `changed` of the feeds gain items; from
    round 2 on every feed does (the suite's paced phase, new items arriving steadily)."""
    return round_ >= 2 or (round_ == 1 and _unit(spec.seed, 1, feed, round_) < spec.changed)


def failing_in_round(spec: FarmSpec, feed: int, round_: int) -> bool:
    """Whether `feed` answers 503 throughout `round_` (the error knob)."""
    return bool(spec.error_rate) and _unit(spec.seed, 2, feed, round_) < spec.error_rate


def newest_item(spec: FarmSpec, feed: int, round_: int) -> int:
    """Number of the newest item of `feed` in `round_` (items are numbered from 0, oldest first)."""
    gained = sum(spec.new_items for r in range(1, round_ + 1) if changed_in_round(spec, feed, r))
    return spec.items - 1 + gained


def _last_change(spec: FarmSpec, feed: int, round_: int) -> int:
    return max((r for r in range(1, round_ + 1) if changed_in_round(spec, feed, r)), default=0)


def _item_time(feed: int, number: int) -> datetime:
    return _EPOCH + timedelta(minutes=7 * number + feed % 60)


def _paragraphs(spec: FarmSpec, feed: int, number: int) -> list[str]:
    rng = random.Random(spec.seed * 1_000_003 + feed * 10_007 + number)
    out: list[str] = []
    size = 0
    while size < spec.item_bytes - 400:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(25, 45))]
        words[0] = words[0].capitalize()
        paragraph = " ".join(words) + "."
        out.append(paragraph)
        size += len(paragraph) + 7
    return out


def _title(spec: FarmSpec, feed: int, number: int) -> str:
    rng = random.Random(spec.seed * 7_919 + feed * 104_729 + number)
    return " ".join(rng.choice(_WORDS) for _ in range(8)).capitalize() + f" ({feed}-{number})"


def teaser(spec: FarmSpec, feed: int, number: int) -> str:
    """Pure: the one sentence a summary-only feed carries for an item (well under the
    80 words under which `full_text = "auto"` fetches the page)."""
    rng = random.Random(spec.seed * 104_723 + feed * 7_927 + number)
    words = [rng.choice(_WORDS) for _ in range(rng.randint(18, 30))]
    return " ".join(words).capitalize() + "."


def page_url(base: str, feed: int, number: int) -> str:
    """Where item `number` of `feed` has its article page on the farm at `base`."""
    return f"{base}/article/{feed}/{number}.html"


def article_page(spec: FarmSpec, feed: int, number: int) -> bytes:
    """Pure: the article page of item `number` of `feed`, 60-200 KB (bench/pages.py)."""
    size = PAGE_MIN_BYTES + int(_unit(spec.seed, 3, feed, number) * (PAGE_MAX_BYTES - PAGE_MIN_BYTES))
    return make_page(spec.seed * 1_000_003 + feed * 10_007 + number, size)


def _text(spec: FarmSpec, feed: int, number: int) -> str:
    """An item's own text (HTML): its story, or with `summary_only` a teaser."""
    if spec.summary_only:
        return teaser(spec, feed, number)
    return "".join(f"<p>{p}</p>" for p in _paragraphs(spec, feed, number))


def _link(spec: FarmSpec, feed: int, number: int, base: str, query: str = "") -> str:
    if spec.summary_only:
        return page_url(base, feed, number)
    return f"https://news{feed % 50}.example/world/{feed}/{number}.html{query}"


def _rss(spec: FarmSpec, feed: int, numbers: range, base: str) -> str:
    items = []
    for n in numbers:
        html = _text(spec, feed, n)
        items.append(
            f"<item><title>{escape(_title(spec, feed, n))}</title>"
            f"<link>{escape(_link(spec, feed, n, base, '?utm_source=rss'))}</link>"
            f"<guid isPermaLink=\"false\">farm-{feed}-{n}</guid>"
            f"<pubDate>{format_datetime(_item_time(feed, n), usegmt=True)}</pubDate>"
            f"<author>desk{feed % 7}@news.example (News Desk)</author>"
            f"<category>World</category><description>{escape(html)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>Farm feed {feed}</title><link>https://news{feed % 50}.example/</link>"
        f"<description>Bench feed {feed}</description><language>en</language>"
        + "".join(items) + "</channel></rss>"
    )


def _atom(spec: FarmSpec, feed: int, numbers: range, base: str) -> str:
    entries = []
    text = "summary" if spec.summary_only else "content"
    for n in numbers:
        html = _text(spec, feed, n)
        when = _item_time(feed, n).isoformat().replace("+00:00", "Z")
        entries.append(
            f"<entry><title>{escape(_title(spec, feed, n))}</title>"
            f'<link rel="alternate" href="{escape(_link(spec, feed, n, base))}"/>'
            f"<id>urn:farm:{feed}:{n}</id><published>{when}</published><updated>{when}</updated>"
            f"<author><name>News Desk {feed % 7}</name></author><category term=\"World\"/>"
            f'<{text} type="html">{escape(html)}</{text}></entry>'
        )
    updated = _item_time(feed, numbers[-1]).isoformat().replace("+00:00", "Z") if numbers else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">'
        f"<title>Farm feed {feed}</title><id>urn:farm:{feed}</id><updated>{updated}</updated>"
        f'<link rel="alternate" href="https://news{feed % 50}.example/"/>'
        + "".join(entries) + "</feed>"
    )


def feed_body(spec: FarmSpec, feed: int, round_: int, base: str = "") -> bytes:
    """Pure: the document of `feed` in `round_`, newest item first. `base`: the farm's own
    address, which the items of a summary-only feed link to."""
    newest = newest_item(spec, feed, round_)
    numbers = range(newest, newest - spec.items, -1)
    text = _rss(spec, feed, numbers, base) if feed % 2 == 0 else _atom(spec, feed, numbers, base)
    return text.encode()


def _packed(body: bytes, modified: datetime) -> tuple[bytes, str, str]:
    """(gzip body, ETag, Last-Modified): what the farm keeps per document."""
    return gzip.compress(body, 6), '"' + hashlib.md5(body).hexdigest() + '"', format_datetime(modified, usegmt=True)


class Farm:
    """The aiohttp app; bodies are built once per (feed, version) and kept compressed.

    `base` is the farm's own address (http://127.0.0.1:port), for the links of a
    summary-only feed's items; set it before the first document is served."""

    def __init__(self, spec: FarmSpec, base: str = "") -> None:
        self.spec = spec
        self.base = base
        self.round = 0
        # Compressed body, ETag, Last-Modified per (feed, version): 100,000 small feeds fit.
        self.cache: dict[tuple[int, int], tuple[bytes, str, str]] = {}
        # The same per (feed, item) article page; pages never change, ~4 KB each compressed.
        self.pages: dict[tuple[int, int], tuple[bytes, str, str]] = {}
        self.served: Counter[str] = Counter()

    def _document(self, feed: int) -> tuple[bytes, str, str]:
        version = _last_change(self.spec, feed, self.round)
        key = (feed, version)
        found = self.cache.get(key)
        if found is None:
            found = _packed(feed_body(self.spec, feed, self.round, self.base), _EPOCH + timedelta(hours=version))
            self.cache[key] = found
        return found

    def _page(self, feed: int, number: int) -> tuple[bytes, str, str]:
        found = self.pages.get((feed, number))
        if found is None:
            found = _packed(article_page(self.spec, feed, number), _item_time(feed, number))
            self.pages[(feed, number)] = found
        return found

    def _answer(self, request: web.Request, document: tuple[bytes, str, str], content_type: str,
                kind: str = "") -> web.Response:
        """200 (gzip when accepted) or 304 by the request's validators; counted as `kind` + status."""
        packed, etag, modified = document
        validators = {"ETag": etag, "Last-Modified": modified}
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if (inm is not None and etag in inm) or (inm is None and ims == modified):
            self.served[kind + "304"] += 1
            return web.Response(status=304, headers=validators)
        headers = {**validators, "Content-Type": content_type}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            self.served[kind + "200-gzip"] += 1
            return web.Response(body=packed, headers={**headers, "Content-Encoding": "gzip"})
        self.served[kind + "200"] += 1
        return web.Response(body=gzip.decompress(packed), headers=headers)

    async def feed(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            feed = int(name.split(".")[0])
        except ValueError:
            raise web.HTTPNotFound() from None
        if not 0 <= feed < self.spec.feeds:
            raise web.HTTPNotFound()
        if self.spec.latency_ms:
            await asyncio.sleep(self.spec.latency_ms / 1000)
        if failing_in_round(self.spec, feed, self.round):
            self.served["503"] += 1
            return web.Response(status=503, text="busy", headers={"Retry-After": "1"})
        kind = "application/rss+xml" if feed % 2 == 0 else "application/atom+xml"
        return self._answer(request, self._document(feed), f"{kind}; charset=utf-8")

    async def article(self, request: web.Request) -> web.Response:
        """An item's article page; only items the feed has listed up to this round exist."""
        try:
            feed, number = int(request.match_info["feed"]), int(request.match_info["name"].split(".")[0])
        except ValueError:
            raise web.HTTPNotFound() from None
        if not (self.spec.summary_only and 0 <= feed < self.spec.feeds
                and 0 <= number <= newest_item(self.spec, feed, self.round)):
            raise web.HTTPNotFound()
        if self.spec.latency_ms:
            await asyncio.sleep(self.spec.latency_ms / 1000)
        return self._answer(request, self._page(feed, number), "text/html; charset=utf-8", "page-")

    async def robots(self, request: web.Request) -> web.Response:
        self.served["robots"] += 1
        return web.Response(text="User-agent: *\nAllow: /\n")

    async def opml(self, request: web.Request) -> web.Response:
        host = request.query.get("host", request.host)
        lines = [f'<outline type="rss" text="Farm feed {n}" xmlUrl="http://{host}/feed/{n}.xml"/>'
                 for n in range(self.spec.feeds)]
        text = ('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0"><head><title>farm</title>'
                "</head><body>" + "\n".join(lines) + "</body></opml>\n")
        return web.Response(text=text, content_type="text/x-opml")

    async def control(self, request: web.Request) -> web.Response:
        """Set the round; with `prerender=1`, build every document of it before answering.

        A publisher renders its feed on its own machine; rendering and compressing a
        30-item document here costs ~4 ms, which on the first request of a phase
        took half a core away from the contender on the same two cores.
        """
        self.round = int(request.query["round"])
        changed = [n for n in range(self.spec.feeds) if changed_in_round(self.spec, n, self.round)]
        if len(self.cache) > 4 * self.spec.feeds:  # old versions are not asked for again
            self.cache.clear()
        if request.query.get("prerender") == "1":
            for feed in range(self.spec.feeds):
                self._document(feed)
                if self.spec.summary_only:  # under a millisecond a page
                    newest = newest_item(self.spec, feed, self.round)
                    for number in range(newest - self.spec.items + 1, newest + 1):
                        self._page(feed, number)
        return web.json_response({"round": self.round, "changed": changed})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.served))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/feed/{name}", self.feed)
        app.router.add_get("/article/{feed}/{name}", self.article)
        app.router.add_get("/robots.txt", self.robots)
        app.router.add_get("/opml", self.opml)
        app.router.add_post("/control", self.control)
        app.router.add_get("/stats", self.stats)
        return app


async def _serve(spec: FarmSpec, port: int) -> None:
    # The socket is bound first: a summary-only feed's links need the farm's own port.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    runner = web.AppRunner(Farm(spec, f"http://127.0.0.1:{port}").app(), access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    print(port, flush=True)
    await asyncio.Event().wait()


def parse_args(argv: list[str] | None = None) -> tuple[FarmSpec, int]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--changed", type=float, default=0.1)
    p.add_argument("--new-items", type=int, default=3)
    p.add_argument("--item-bytes", type=int, default=2500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--summary-only", action="store_true",
                   help="items carry a one-sentence teaser and link to 60-200 KB article pages on the farm")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    spec = FarmSpec(a.feeds, a.items, a.changed, a.new_items, a.item_bytes, a.seed, a.latency_ms, a.error_rate,
                    a.summary_only)
    return spec, a.port


def main(argv: list[str] | None = None) -> None:
    spec, port = parse_args(argv)
    try:
        import uvloop

        uvloop.run(_serve(spec, port))
    except ImportError:
        asyncio.run(_serve(spec, port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
