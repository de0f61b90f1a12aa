"""The wire-copy test sets (tests/data/clusters/wire-<lang>.json), as feeds and items.

Each set holds one wire story with three re-published copies under the usual
edits, and hard negatives beside it (a next-day follow-up quoting the
original, an independent report of the same event, another story sharing
boilerplate paragraphs, a two-sentence brief). Items with the same `story`
must share a cluster; every other pair must not. Some copies declare no
language or a wrong one: the shingling must go by the text itself.

Every item is served as its own JSON Feed document (one feed per item), so
the real parse and normalization run on it; bench/bench_clusters.py reads
the same sets.
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ingest.models import FeedSpec, Item, feed_id_for_url
from workers.normalize.record import normalize_entry
from workers.parse import parse_feed_bytes

__all__ = ["LANGUAGES", "WireItem", "items_of", "jsonfeed", "load", "pairs", "url_of"]

DATA = Path(__file__).parent / "data" / "clusters"
LANGUAGES = ("ko", "ja", "zh", "en")
FETCHED_AT = "2026-12-02T00:00:00Z"


@dataclass(frozen=True)
class WireItem:
    key: str
    story: str
    outlet: str
    language: str | None  # as declared by the feed (None: not declared; may be wrong)
    edit: str
    title: str
    paragraphs: tuple[str, ...]
    published: str


def load(language: str) -> list[WireItem]:
    doc: dict[str, Any] = orjson.loads((DATA / f"wire-{language}.json").read_bytes())
    return [
        WireItem(i["key"], i["story"], i["outlet"], i["language"], i["edit"], i["title"],
                 tuple(i["paragraphs"]), i["published"])
        for i in doc["items"]
    ]


def url_of(item: WireItem) -> str:
    return f"http://wire.example/{item.key}.json"


def jsonfeed(item: WireItem) -> bytes:
    """The item as a one-entry JSON Feed 1.1 document of its outlet."""
    entry: dict[str, Any] = {
        "id": f"urn:wire:{item.key}",
        "url": f"http://wire.example/articles/{item.key}",
        "title": item.title,
        "content_html": "".join(f"<p>{html.escape(p)}</p>" for p in item.paragraphs),
        "date_published": item.published,
    }
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": item.outlet,
        "items": [entry],
    }
    if item.language:
        feed["language"] = item.language
    return orjson.dumps(feed)


def items_of(item: WireItem) -> list[Item]:
    """The normalized records of the item's feed document (one)."""
    url = url_of(item)
    parsed: Any = parse_feed_bytes(jsonfeed(item), {}, url)
    spec = FeedSpec(feed_id_for_url(url), url)
    return [normalize_entry(e, parsed["feed"], spec, url, FETCHED_AT) for e in parsed["entries"]]


def pairs(items: list[WireItem]) -> list[tuple[WireItem, WireItem, bool]]:
    """Every unordered pair, with whether they are copies of one story."""
    return [(a, b, a.story == b.story) for a, b in itertools.combinations(items, 2)]
