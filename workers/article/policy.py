"""Fetch policy as pure functions: should we fetch the page, may we, may we use it.

Nothing here does I/O, so every decision is tested on plain values: the
mode and threshold (settings `full_text`, `full_text_min_words`), the host's
robots.txt text, the page's status and HTML.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import orjson

__all__ = [
    "MODES",
    "has_fewer_words",
    "is_paywalled",
    "is_teaser",
    "robots_allows",
    "robots_url",
    "should_fetch",
    "word_count",
]

MODES = ("off", "auto", "always")

# "Read more", "Continue reading", "[...]", "…": the feed cut the story short. The
# readable form; is_teaser matches its mirror image, below.
_TEASER = re.compile(
    r"(?:\b(?:read|see)\s+(?:more|the\s+full\s+(?:story|article))\b|\bcontinue\s+reading\b|"
    r"\[\s*(?:\.\.\.|…)\s*\]|(?:\.\.\.|…)\s*(?:\]|»|>>)?)\W{0,4}$",
    re.IGNORECASE,
)
# The same pattern read backwards, matched at the start of the reversed text. The
# forward one, anchored at the end, was searched from every position of a
# 2,000-character story to find its last few characters (~150 µs an entry, a sixth
# of a cold worker's time); whether a pattern matches does not depend on the
# direction it is read in (\b is symmetric), so this answers the same in ~2 µs.
# tests/test_article.py holds the two to the same answers on generated texts.
_TEASER_REVERSED = re.compile(
    r"\W{0,4}(?:\b(?:erom|(?:yrots|elcitra)\s+lluf\s+eht)\s+(?:daer|ees)\b|\bgnidaer\s+eunitnoc\b|"
    r"\]\s*(?:\.\.\.|…)\s*\[|(?:\]|»|>>)?\s*(?:\.\.\.|…))",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")

# Statuses of pages behind a login or a paywall: never worked around.
_CLOSED_STATUSES = frozenset({401, 402, 403})
# Markers publishers put in paywalled pages (class names, meta tags).
_PAYWALL_MARKERS = re.compile(
    rb"""class=["'][^"']*\b(?:paywall|piano-offer|subscriber-only|premium-content|tp-modal)\b"""
    rb"""|<meta[^>]+name=["'](?:cXenseParse:paywall|article:content_tier)["'][^>]+content=["'](?:true|locked|metered)""",
    re.IGNORECASE,
)
_JSON_LD = re.compile(
    rb"""<script[^>]+type=["']application/ld\+json["'][^>]*>(.*?)</script>""", re.IGNORECASE | re.DOTALL
)


def word_count(text: str) -> int:
    """Words of `text`; a CJK character counts as one word (those scripts use no spaces)."""
    return len(_WORD.findall(text)) + len(_CJK.findall(text))


def is_teaser(text: str) -> bool:
    """True when the text ends like a cut story ("… Read more", "[…]", "Continue reading")."""
    return _TEASER_REVERSED.match(text.strip()[::-1]) is not None


def has_fewer_words(text: str, limit: int) -> bool:
    """word_count(text) < limit, without counting past `limit`.

    A story of 300 words is no short one after its 80th: listing every word
    cost ~70 µs an entry for a decision made at the 80th.
    """
    if limit <= 0:
        return False
    if _at_least_words(limit).match(text):
        return False
    return word_count(text) < limit


@functools.lru_cache(maxsize=8)
def _at_least_words(limit: int) -> re.Pattern[str]:
    """Matches a text with at least `limit` runs of \\w (words, CJK aside): the regex
    engine walks them without making a match object per word."""
    return re.compile(r"\W*(?:\w+\W+){" + str(limit - 1) + r"}\w")


def should_fetch(mode: str, text: str, min_words: int, link: str | None) -> bool:
    """Fetch the article page? `text` is the entry's own text (content, else summary).

    off: never; always: whenever there is an http(s) link; auto: when the text
    is shorter than `min_words` words or ends in a teaser.
    """
    if mode == "off" or not link or urlsplit(link).scheme not in ("http", "https"):
        return False
    if mode == "always":
        return True
    return has_fewer_words(text, min_words) or is_teaser(text)


def robots_url(page_url: str) -> str:
    """The robots.txt of the page's origin."""
    parts = urlsplit(page_url)
    return f"{parts.scheme}://{parts.netloc}/robots.txt"


def robots_allows(robots_txt: str | None, user_agent: str, page_url: str,
                  ignore_hosts: Iterable[str] = ()) -> bool:
    """May `user_agent` fetch `page_url` under this robots.txt?

    `None` means the host has no robots.txt (404/410): everything is allowed,
    as the robots exclusion standard (RFC 9309) says. A host in `ignore_hosts`
    (setting `full_text_ignore_robots_hosts`: one's own sites) is always allowed.
    """
    host = (urlsplit(page_url).hostname or "").lower()
    if host in {h.strip().lower() for h in ignore_hosts if h.strip()}:
        return True
    if robots_txt is None:
        return True
    parser = RobotFileParser()
    parser.parse(robots_txt.splitlines())
    agent = user_agent.split("/")[0].strip() or user_agent
    return parser.can_fetch(agent, page_url)


def _closed_in(node: Any) -> bool:
    """isAccessibleForFree false anywhere in a JSON-LD value (true/"False"/"false" all appear)."""
    if isinstance(node, dict):
        free = node.get("isAccessibleForFree")
        if free is False or (isinstance(free, str) and free.strip().lower() == "false"):
            return True
        return any(_closed_in(v) for v in node.values())
    if isinstance(node, list):
        return any(_closed_in(v) for v in node)
    return False


def is_paywalled(status: int | None, html: bytes) -> bool:
    """A page behind a login or paywall: 401/402/403, JSON-LD isAccessibleForFree false,
    or a paywall marker. Such pages are left alone, never worked around."""
    if status in _CLOSED_STATUSES:
        return True
    for block in _JSON_LD.findall(html):
        try:
            if _closed_in(orjson.loads(block)):
                return True
        except orjson.JSONDecodeError:
            continue
    return bool(_PAYWALL_MARKERS.search(html))
