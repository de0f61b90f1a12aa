"""parse -> normalize -> cluster -> deliver for one fetched document. The heart of a job.

Per document, Redis is asked a handful of times whatever the number of
entries: one MGET for the state of every entry, at most two round trips
to the cluster index for the changed ones, one round trip delivering them
(and restarting the retention of the entries seen unchanged) with the index's
entries for them (decision 160), and one with the document's counters and, for a
worker's job, the feed's outcome (decision 159).
Entries whose raw fingerprint matches the stored one are not normalized at all, and
entries whose bytes the feed's map knows are not even read (workers/rawseen.py, #21):
a changed document costs about what its new entries cost.

One odd entry never costs the feed, at any stage: an entry whose identity,
normalization or serialization fails is logged with its reason, counted
(`normalize_errors` in <ns>:stats) and skipped; the others are delivered.
Sizes are capped by workers/limits.py (`entries_dropped`, `items_truncated`).
"""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ingest.counters import PUSHED_HEADER, latency_field, processing_call
from ingest.deliver.publish import Deliverer
from ingest.deliver.state import ItemState
from ingest.models import DeliveryResult, FeedSpec, Fetched, Item, item_to_json
from ingest.poll.registry import success_call
from ingest.poll.schedule import feed_hint_seconds, publishing_interval
from ingest.push.state import polled_news_call
from ingest.redis_conn import ScriptCall, run_script, run_scripts
from ingest.settings import Settings
from workers import deadline, rawseen
from workers.article.complete import complete_items, page_deadline, schedule_follow_ups
from workers.article.fetch import ArticleFetcher
from workers.clusters.index import ClusterIndex
from workers.fastfeed import KnownEntries, SkippedEntry
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


def _entry_time(entry: Any) -> float | None:
    """Publication time (epoch s) of an entry, when it has one: input for adaptive polling."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed:
        try:
            return float(calendar.timegm(parsed))
        except (TypeError, ValueError, OverflowError):
            return None
    return None


@dataclass
class _Reading:
    """One document as read: what delivery needs, whichever entries were skipped."""

    feed: Any  # the feed's dict
    entries: int  # entries in the document (those past the cap and those cut included)
    dropped: int  # entries past max_entries_per_document
    # item id -> (the entry, or the SkippedEntry in its place; its fingerprint); the first
    # of each id in document order (the same entry twice in one document is one item)
    seen: dict[str, tuple[Any, str]]
    raws: dict[str, bytes]  # item id -> the raw key of that entry, when the fast reader keyed it
    keyed: bool  # the fast reader keyed the entries (so the feed's map may be rewritten)
    times: list[float]  # publication times of the entries kept, skipped ones too
    failed: int  # entries without a usable identity
    skipped: int  # entries not read: their raw key was known


def _read(spec: FeedSpec, fetched: Fetched, limits: Limits, known: KnownEntries | None) -> _Reading:
    """Parse the document and identify its entries (within the parse deadline).

    An entry the map knows (workers/rawseen.py) is not read: its id, fingerprint and
    publication time come from the map. The time is taken for skipped entries too, so the
    feed's adaptive interval sees every entry as before."""
    # Parse and normalize spend the job's parse_deadline budget (workers/deadline.py):
    # it holds even inside feedparser.
    parsed: Any = deadline.bounded(parse_feed_bytes, fetched.body, fetched.headers, fetched.final_url,
                                   limits.max_entity_expansion_bytes,
                                   limits.max_entries_per_document, limits.fast_parser, known)
    all_entries = parsed["entries"]
    raw_keys: list[bytes] | None = dict.get(parsed, "entry_raws")  # not FeedParserDict.get: no aliases
    entries, dropped = cap_entries(list(all_entries), limits)
    dropped += int(parsed.get("entries_cut") or 0)
    reading = _Reading(parsed["feed"], len(all_entries) + int(parsed.get("entries_cut") or 0), dropped,
                       {}, {}, raw_keys is not None, [], 0, 0)
    for index, entry in enumerate(entries):
        raw = raw_keys[index] if raw_keys is not None else None
        if isinstance(entry, SkippedEntry):
            memo: rawseen.Known = entry.known
            if memo.published is not None:
                reading.times.append(memo.published)
            reading.skipped += 1
            item_id, fingerprint = memo.item_id, memo.fingerprint
        else:
            when = _entry_time(entry)
            if when is not None:
                reading.times.append(when)
            try:
                item_id = entry_identity(spec.feed_id, entry, fetched.final_url)
                fingerprint = entry_fingerprint(entry)
            except Exception:  # e.g. a lone surrogate in the guid: this entry only
                log.exception("feed %s %s: an entry has no usable identity; skipped", spec.feed_id, spec.url)
                reading.failed += 1
                continue
        if item_id not in reading.seen:
            reading.seen[item_id] = (entry, fingerprint)
            if raw is not None:
                reading.raws[item_id] = raw
    return reading


def _confirmed(reading: _Reading, states: list[ItemState], normalized: set[str]) -> dict[bytes, bytes]:
    """Pure: the feed's next map, raw key -> value, from the entries whose state holds (or,
    once delivered, will hold) their fingerprint: found unchanged, or normalized and handed
    to delivery. An entry that failed stays out, so it is read again next time as before."""
    entries: dict[bytes, bytes] = {}
    for (item_id, (entry, fingerprint)), state in zip(reading.seen.items(), states, strict=True):
        raw = reading.raws.get(item_id)
        if raw is None or not (item_id in normalized or state.has_fingerprint(fingerprint)):
            continue
        if isinstance(entry, SkippedEntry):
            entries[raw] = entry.known.value
        else:
            entries[raw] = rawseen.pack(item_id, fingerprint, _entry_time(entry))
    return entries


async def _read_states(deliverer: Deliverer, spec: FeedSpec, fetched: Fetched, limits: Limits,
                       memo: dict[bytes, rawseen.Known] | None) -> tuple[_Reading, list[ItemState], float]:
    """The document read (skipping what `memo` knows) and the state of each of its items,
    and the seconds spent reading. Where the map knew an entry the state does not hold as it
    (the state was lost or pruned, or a concurrent job changed it since), every entry is
    read and the states read again: exactly the path before the map (#21)."""
    salt = rawseen.salt(fetched.final_url)
    started = time.perf_counter()
    reading = _read(spec, fetched, limits, None if memo is None else KnownEntries(salt, memo))
    seconds = time.perf_counter() - started
    # A skipped entry was in the feed's state hash when its map entry was written, so its
    # key of before #13 is not read; if the hash lost it, the full path below reads it.
    in_hash = {item_id for item_id, (entry, _) in reading.seen.items() if isinstance(entry, SkippedEntry)}
    states = await deliverer.states(spec.feed_id, list(reading.seen), in_hash)
    if reading.skipped and any(isinstance(entry, SkippedEntry) and not state.has_fingerprint(fingerprint)
                               for (entry, fingerprint), state in zip(reading.seen.values(), states, strict=True)):
        log.info("feed %s %s: the state disagrees with the entries' map; every entry read",
                 spec.feed_id, spec.url)
        started = time.perf_counter()
        reading = _read(spec, fetched, limits, KnownEntries(salt, {}))
        seconds += time.perf_counter() - started
        states = await deliverer.states(spec.feed_id, list(reading.seen))
    return reading, states, seconds


async def _in_one_round_trip(deliverer: Deliverer, calls: Sequence[ScriptCall]) -> None:
    """The script calls in one round trip on one Redis (EVALSHA each, no SCRIPT EXISTS
    first), else one by one: on a cluster the keys they touch live in other slots."""
    if not deliverer.cluster:
        await run_scripts(deliverer.redis, calls)
        return
    for call in calls:
        await run_script(deliverer.redis, call)


def _notes(deliverer: Deliverer, fetched: Fetched, result: DeliveryResult, title: str,
           success: bool) -> list[ScriptCall]:
    """The feed's notes that travel with the document's counters: a poll's news on a feed
    the hub should have pushed (#11), and the job's outcome when `success` (decision 159)."""
    notes: list[ScriptCall] = []
    if result.new and PUSHED_HEADER not in fetched.headers:  # did the hub miss these? (#11)
        notes.append(polled_news_call(deliverer.keys, result.feed_id, time.time()))
    if success:
        notes.append(success_call(deliverer.keys, result, title, fetched.fetched_at, fetched.status))
    return notes


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
    *,
    note_success: bool = False,
) -> ProcessedFeed:
    """Parse the body, deliver what is new or changed; raises ParseError on bad input.

    `clusters` is the worker's cluster index and `options` its normalization
    settings (both built from Settings once per worker); without them the
    default settings apply, on the deliverer's Redis. `limits` are the caps.

    `note_success`: the feed's outcome (ingest.poll.registry.success_call) and
    `fetches_ok` go with the document's counters, in its last round trip, instead of
    the caller's `record_success` after it (a worker's job, decision 159). Nothing is
    noted when this raises: the outcome is in the same trip as the counters, the last.
    """
    limits = limits or Limits()
    memo = await rawseen.read(deliverer.redis, deliverer.keys, spec.feed_id) if limits.fast_parser else None
    reading, states, parse_seconds = await _read_states(deliverer, spec, fetched, limits, memo)
    ids = list(reading.seen)
    feed, base, failed, seen = reading.feed, fetched.final_url, reading.failed, reading.seen
    parsed_at = time.perf_counter()
    fetched_now = time.time()

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
    dropped = reading.dropped
    if dropped:
        log.warning("feed %s %s: %d entries past max_entries_per_document dropped",
                    spec.feed_id, spec.url, dropped)

    page_wait = page_deadline(articles.settings, PUSHED_HEADER in fetched.headers) if articles else 0.0
    if articles is not None:  # the whole story before delivery, within a deadline (#15; a push's own, #21)
        items = await complete_items(items, spec, articles, articles.settings, page_wait)
    index = clusters or default_cluster_index(deliverer)
    # The index's entries are written in the delivery's round trip (decision 160).
    assigned, index_write = await index.assign_deferred(items)
    delivered = await deliverer.deliver(spec.feed_id, list(zip(assigned, fingerprints, strict=True)), expected,
                                        spec.tags, touch=untouched, before=() if index_write is None else [index_write])
    if articles is not None:
        await schedule_follow_ups(articles.queue, spec, delivered, articles.settings, tried=page_wait > 0)
    # The next document's entries known by their bytes (workers/rawseen.py): the map is
    # rewritten when this document's entries are not the ones it holds.
    remember = _confirmed(reading, states, {item.id for item in items}) if reading.keyed else None
    if remember is not None and memo is not None and remember.keys() == memo.keys():
        remember = None

    new = sum(1 for item in delivered if item.version == 1)
    result = DeliveryResult(
        feed_id=spec.feed_id,
        feed_url=spec.url,
        entries=reading.entries,
        new=new,
        updated=len(delivered) - new,
        unchanged=len(ids) - len(delivered),
        publish_interval=publishing_interval(reading.times, time.time()),
        feed_hint=feed_hint_seconds(feed.get("ttl"), feed.get("sy_updateperiod"),
                                    feed.get("sy_updatefrequency")),
    )
    title = plain_text(feed.get("title")) or spec.title
    finish = [processing_call(deliverer.keys, parse_seconds, normalize_seconds, delivered,
                              latency=latency_field(fetched.headers),
                              normalize_errors=failed, entries_dropped=dropped, items_truncated=truncated,
                              entries_skipped_raw=reading.skipped, fetches_ok=int(note_success))]
    if remember is not None:
        finish.insert(0, rawseen.write_call(deliverer.keys, spec.feed_id, remember, deliverer.retention_seconds))
    await _in_one_round_trip(deliverer, finish + _notes(deliverer, fetched, result, title, note_success))
    log.info("feed %s %s: %d entries, %d new, %d updated", spec.feed_id, spec.url,
             result.entries, result.new, result.updated)
    return ProcessedFeed(result=result, title=title, delivered=delivered)
