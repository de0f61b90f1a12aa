"""parse -> normalize -> cluster -> deliver for one fetched document. The heart of a job.

Per document, Redis is asked a handful of times whatever the number of
entries: one MGET for the state of every entry, at most three round trips
to the cluster index for the changed ones, one script call delivering them
(and restarting the retention of the entries seen unchanged).
Entries whose raw fingerprint matches the stored one are not normalized at all.

One odd entry never costs the feed, at any stage: an entry whose identity,
normalization or serialization fails is logged with its reason, counted
(`normalize_errors` in <ns>:stats) and skipped; the others are delivered.
Sizes are capped by workers/limits.py (`entries_dropped`, `items_truncated`).
"""

from __future__ import annotations

import calendar
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from ingest.counters import PUSHED_HEADER, latency_field, record_processing
from ingest.deliver.publish import Deliverer
from ingest.models import DeliveryResult, FeedSpec, Fetched, Item, item_to_json
from ingest.poll.schedule import feed_hint_seconds, publishing_interval
from ingest.settings import Settings
from workers import deadline
from workers.article.complete import complete_items, page_deadline, schedule_follow_ups
from workers.article.fetch import ArticleFetcher
from workers.clusters.index import ClusterIndex
from workers.limits import Limits, bound_entry, cap_entries, cap_item
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
    return ClusterIndex.from_settings(deliverer.redis, deliverer.keys, Settings())


async def process_document(
    deliverer: Deliverer,
    spec: FeedSpec,
    fetched: Fetched,
    clusters: ClusterIndex | None = None,
    options: NormalizeOptions | None = None,
    limits: Limits | None = None,
    articles: ArticleFetcher | None = None,
) -> ProcessedFeed:
    """Parse the body, deliver what is new or changed; raises ParseError on bad input.

    `clusters` is the worker's cluster index and `options` its normalization
    settings (both built from Settings once per worker); without them the
    default settings apply, on the deliverer's Redis. `limits` are the caps.
    """
    limits = limits or Limits()
    started = time.perf_counter()
    # Parse and normalize spend the job's parse_deadline budget (workers/deadline.py):
    # it holds even inside feedparser.
    parsed: Any = deadline.bounded(parse_feed_bytes, fetched.body, fetched.headers, fetched.final_url,
                                   limits.max_entity_expansion_bytes,
                                   limits.max_entries_per_document, limits.fast_parser)
    feed, all_entries = parsed["feed"], parsed["entries"]
    entries, dropped = cap_entries(list(all_entries), limits)
    dropped += int(parsed.get("entries_cut") or 0)
    base = fetched.final_url
    failed = 0
    # The same entry twice in one document (it happens) is one item.
    seen: dict[str, tuple[Any, str]] = {}
    for entry in entries:
        try:
            item_id = entry_identity(spec.feed_id, entry, base)
            fingerprint = entry_fingerprint(entry)
        except Exception:  # e.g. a lone surrogate in the guid: this entry only
            log.exception("feed %s %s: an entry has no usable identity; skipped", spec.feed_id, spec.url)
            failed += 1
            continue
        seen.setdefault(item_id, (entry, fingerprint))
    ids = list(seen)
    parsed_at = time.perf_counter()
    fetched_now = time.time()
    states = await deliverer.states(spec.feed_id, ids)

    items: list[Item] = []
    fingerprints: list[str] = []
    expected = []
    untouched: list[str] = []
    truncated = 0
    for item_id, state in zip(ids, states, strict=True):
        entry, fingerprint = seen[item_id]
        if state.has_fingerprint(fingerprint):
            if state.needs_touch(fetched_now):
                untouched.append(item_id)
            continue
        try:
            bounded, trimmed = bound_entry(entry, limits)
            item = cap_item(deadline.bounded(normalize_entry, bounded, feed, spec, base,
                                             fetched.fetched_at, options or NormalizeOptions()),
                            limits, trimmed)
            item_to_json(item)  # serializable now, or this entry alone fails (not the batch)
        except Exception:  # one odd entry must not cost the other entries of the feed
            log.exception("feed %s %s: entry %s could not be normalized; skipped",
                          spec.feed_id, spec.url, item_id)
            failed += 1
            continue
        truncated += bool(item.truncated)
        if spec.tags:  # the feed's tags travel with the record (filters on the stream)
            item = replace(item, tags=list(spec.tags))
        items.append(item)
        fingerprints.append(fingerprint)
        expected.append(state)
    normalize_seconds = time.perf_counter() - parsed_at
    if dropped:
        log.warning("feed %s %s: %d entries past max_entries_per_document dropped",
                    spec.feed_id, spec.url, dropped)

    page_wait = page_deadline(articles.settings, PUSHED_HEADER in fetched.headers) if articles else 0.0
    if articles is not None:  # the whole story before delivery, within a deadline (#15; a push's own, #21)
        items = await complete_items(items, spec, articles, articles.settings, page_wait)
    index = clusters or default_cluster_index(deliverer)
    candidates = list(zip(await index.assign(items), fingerprints, strict=True))
    delivered = await deliverer.deliver(spec.feed_id, candidates, expected, spec.tags, touch=untouched)
    if articles is not None:
        await schedule_follow_ups(articles.queue, spec, delivered, articles.settings, tried=page_wait > 0)
    await record_processing(deliverer.redis, deliverer.keys, parsed_at - started, normalize_seconds, delivered,
                            latency=latency_field(fetched.headers),
                            normalize_errors=failed, entries_dropped=dropped, items_truncated=truncated)
    new = sum(1 for item in delivered if item.version == 1)
    result = DeliveryResult(
        feed_id=spec.feed_id,
        feed_url=spec.url,
        entries=len(all_entries) + int(parsed.get("entries_cut") or 0),
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
