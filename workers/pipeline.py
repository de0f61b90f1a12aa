"""parse -> normalize -> deliver for one fetched document. The heart of a job.

Per document, Redis is asked twice at most: one MGET for the state of every
entry, one script call delivering every changed item. Entries whose raw
fingerprint matches the stored one are not normalized at all.
"""

from __future__ import annotations

import calendar
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from ingest.deliver import Deliverer
from ingest.models import DeliveryResult, FeedSpec, Fetched, Item
from ingest.schedule import feed_hint_seconds, publishing_interval
from workers.clean import plain_text
from workers.normalize import entry_fingerprint, entry_identity, normalize_entry
from workers.parse import parse_feed_bytes

__all__ = ["ProcessedFeed", "process_document"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessedFeed:
    result: DeliveryResult
    title: str  # the feed's title as the document declares it
    delivered: list[Item]


def _entry_times(entries: list[Any]) -> list[float]:
    """Publication times (epoch s) of the entries that have one: input for adaptive polling."""
    times: list[float] = []
    for entry in entries:
        parsed = entry.get("published_parsed") or entry.get("updated_parsed")
        if parsed:
            try:
                times.append(float(calendar.timegm(parsed)))
            except (TypeError, ValueError, OverflowError):
                continue
    return times


async def process_document(deliverer: Deliverer, spec: FeedSpec, fetched: Fetched) -> ProcessedFeed:
    """Parse the body, deliver what is new or changed; raises ParseError on bad input."""
    parsed: Any = parse_feed_bytes(fetched.body, fetched.headers, fetched.final_url)
    feed, entries = parsed["feed"], parsed["entries"]
    base = fetched.final_url
    # The same entry twice in one document (it happens) is one item.
    seen: dict[str, tuple[Any, str]] = {}
    for entry in entries:
        item_id = entry_identity(spec.feed_id, entry, base)
        seen.setdefault(item_id, (entry, entry_fingerprint(entry)))
    ids = list(seen)
    states = await deliverer.states(ids)

    candidates: list[tuple[Item, str]] = []
    expected = []
    untouched: list[str] = []
    for item_id, state in zip(ids, states, strict=True):
        entry, fingerprint = seen[item_id]
        if state.version and state.fingerprint == fingerprint:
            untouched.append(item_id)
            continue
        item = normalize_entry(entry, feed, spec, base, fetched.fetched_at)
        if spec.tags:  # the feed's tags travel with the record (filters on the stream)
            item = replace(item, tags=list(spec.tags))
        candidates.append((item, fingerprint))
        expected.append(state)

    delivered = await deliverer.deliver(spec.feed_id, candidates, expected, spec.tags)
    await deliverer.touch(untouched)
    new = sum(1 for item in delivered if item.version == 1)
    result = DeliveryResult(
        feed_id=spec.feed_id,
        feed_url=spec.url,
        entries=len(entries),
        new=new,
        updated=len(delivered) - new,
        unchanged=len(ids) - len(delivered),
        publish_interval=publishing_interval(_entry_times(entries), time.time()),
        feed_hint=feed_hint_seconds(feed.get("ttl"), feed.get("sy_updateperiod"),
                                    feed.get("sy_updatefrequency")),
    )
    log.info("feed %s %s: %d entries, %d new, %d updated", spec.feed_id, spec.url,
             result.entries, result.new, result.updated)
    return ProcessedFeed(result=result, title=plain_text(feed.get("title")) or spec.title,
                         delivered=delivered)
