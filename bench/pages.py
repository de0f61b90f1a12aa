"""Article pages as news sites serve them, for the benchmarks (#15): 60-200 KB of HTML.

One generator for both places that need pages: bench/bench_article.py reads
them in one process, and bench/farm.py serves them behind its summary-only
feeds so the suite measures the whole path (fetch, robots, host slots,
extraction, delivery). A page is a pure function of (seed, target size): a
head with inline CSS and scripts, JSON-LD and Open Graph, a navigation bar
of ~80 links, a cookie banner, share buttons, a story of 8-30 paragraphs, a
related-stories list, a comment section and a footer, padded with ad-slot
boilerplate to the target size.
"""

from __future__ import annotations

import random

__all__ = ["PAGE_MAX_BYTES", "PAGE_MIN_BYTES", "make_page"]

PAGE_MIN_BYTES = 60_000
PAGE_MAX_BYTES = 200_000

_WORDS = ("the government said on tuesday that talks would resume next week after a pause in "
          "negotiations over trade tariffs and defense cooperation officials from both sides met "
          "in the capital to discuss measures including investment energy and security").split()


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def make_page(seed: int, target: int) -> bytes:
    """A news page of about `target` bytes (at least its own markup, ~25-45 KB)."""
    rng = random.Random(seed)
    nav = "".join(f'<li><a href="/section/{i}">Section {i}</a></li>' for i in range(80))
    related = "".join(f'<li><a href="/story/{seed}-{i}">{_sentence(rng, 9)}</a></li>' for i in range(12))
    comments = "".join(f'<div class="comment"><b>reader{i}</b><p>{_sentence(rng, 14)}</p></div>' for i in range(10))
    story = "".join(f"<p>{' '.join(_sentence(rng, rng.randint(12, 28)) for _ in range(3))}</p>"
                    for _ in range(rng.randint(8, 30)))
    head = (f'<meta property="og:title" content="Story {seed}"><meta property="article:published_time" '
            f'content="2024-05-20T06:00:00Z"><script type="application/ld+json">{{"@type":"NewsArticle",'
            f'"headline":"Story {seed}","datePublished":"2024-05-20T08:00:00+02:00","author":{{"name":"A. Writer"}}}}'
            f'</script><link rel="canonical" href="https://news.example/story/{seed}">')
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><title>Story {seed}</title>{head}<style>"
            + ".x{color:red}" * 300 + "</style><script>" + "var a=1;" * 800 + "</script></head><body>"
            f"<header><nav><ul>{nav}</ul></nav><div class=\"cookie-banner\">We use cookies.</div></header>"
            f"<main><h1>Story {seed}</h1><div class=\"byline\">By A. Writer</div>"
            f"<div class=\"share\">Share Tweet Email</div><article>{story}</article>"
            f"<aside class=\"related\"><h3>Related</h3><ul>{related}</ul></aside>"
            f"<section class=\"comments\">{comments}</section></main>")
    filler = '<div class="ad-slot" data-slot="x"><script>googletag.cmd.push(function(){});</script></div>'
    footer = "<footer>Copyright News Example. All rights reserved.</footer></body></html>"
    pad = max(0, target - len(page) - len(footer))
    return (page + filler * (pad // len(filler) + 1) + footer).encode()
