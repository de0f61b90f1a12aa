"""parse -> normalize -> cluster -> deliver for one fetched document. The heart of a job.

Per document, Redis is asked a handful of times whatever the number of
entries: one MGET for the state of every entry, at most three round trips
to the cluster index for the changed ones, one script call delivering them.
Entries whose raw fingerprint matches the stored one are not normalized at all.

One odd entry never costs the feed: an entry the normalizer fails on is
logged with its reason, counted (`normalize_errors` in <ns>:stats) and
skipped; the others are delivered.
"""

from __future__ import annotations

import calendar
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from ingest.deliver.publish import Deliverer
from ingest.models import DeliveryResult, FeedSpec, Fetched, Item
from ingest.poll.schedule import feed_hint_seconds, publishing_interval
from ingest.settings import Settings
from workers import deadline
from workers.clusters.index import ClusterIndex
from workers.normalize.clean import plain_text
from workers.normalize.record import (
    NormalizeOptions,
    entry_fingerprint,
    entry_identity,
    normalize_entry,
)
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


def default_cluster_index(deliverer: Deliverer) -> ClusterIndex:
    """A cluster index on the deliverer's Redis with the default settings."""
    defaults = Settings()
    return ClusterIndex(deliverer.redis, deliverer.keys, defaults.cluster_threshold,
                        defaults.cluster_retention_seconds)


async def process_document(
    deliverer: Deliverer,
    spec: FeedSpec,
    fetched: Fetched,
    clusters: ClusterIndex | None = None,
    options: NormalizeOptions | None = None,
) -> ProcessedFeed:
    """Parse the body, deliver what is new or changed; raises ParseError on bad input.

    `clusters` is the worker's cluster index and `options` its normalization
    settings (both built from Settings once per worker); without them the
    default settings apply, on the deliverer's Redis.
    """
    # Parse and normalize spend the job's parse_deadline budget (workers/deadline.py):
    # it holds even inside feedparser.
    parsed: Any = deadline.bounded(parse_feed_bytes, fetched.body, fetched.headers,
                                   fetched.final_url)
    feed, entries = parsed["feed"], parsed["entries"]
    base = fetched.final_url
    # The same entry twice in one document (it happens) is one item.
    seen: dict[str, tuple[Any, str]] = {}
    for entry in entries:
        item_id = entry_identity(spec.feed_id, entry, base)
        seen.setdefault(item_id, (entry, entry_fingerprint(entry)))
    ids = list(seen)
    states = await deliverer.states(ids)

    items: list[Item] = []
    fingerprints: list[str] = []
    expected = []
    untouched: list[str] = []
    failed = 0
    for item_id, state in zip(ids, states, strict=True):
        entry, fingerprint = seen[item_id]
        if state.version and state.fingerprint == fingerprint:
            untouched.append(item_id)
            continue
        try:
            item = deadline.bounded(normalize_entry, entry, feed, spec, base, fetched.fetched_at,
                                    options or NormalizeOptions())
        except Exception:  # one odd entry must not cost the other entries of the feed
            log.exception("feed %s %s: entry %s could not be normalized; skipped",
                          spec.feed_id, spec.url, item_id)
            failed += 1
            continue
        if spec.tags:  # the feed's tags travel with the record (filters on the stream)
            item = replace(item, tags=list(spec.tags))
        items.append(item)
        fingerprints.append(fingerprint)
        expected.append(state)
    if failed:
        counted = deliverer.redis.hincrby(deliverer.keys.stats, "normalize_errors", failed)
        await counted

    index = clusters or default_cluster_index(deliverer)
    candidates = list(zip(await index.assign(items), fingerprints, strict=True))
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
