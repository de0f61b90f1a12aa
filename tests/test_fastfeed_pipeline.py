"""Switching parsers under stored items: nothing is delivered twice (#9).

Items stored while feedparser read every document carry feedparser's entry
fingerprint. The fast path gives the same entry dicts, so the same fingerprints:
the entries are seen unchanged and not even renormalized. Should a fingerprint
ever differ (a future vocabulary, another feedparser), the entry is
renormalized, and delivery compares content hashes: an unchanged story is still
not delivered again. Both on the real pipeline and the private Redis.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from bench.farm import FarmSpec, feed_body
from ingest.deliver.publish import Deliverer
from ingest.deliver.state import digest8, pack_state, parse_state
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from tests.helpers import stream_records
from workers.limits import Limits
from workers.pipeline import ProcessedFeed, process_document

KEYS = Keys("fast")



async def _process(client: aioredis.Redis, body: bytes, fast: bool) -> ProcessedFeed:
    spec = FeedSpec("farm-0", "http://farm.example/feed/0.xml")
    fetched = Fetched(spec.url, spec.url, 200, {"content-type": "application/rss+xml"}, body,
                      "2026-01-01T00:00:00Z")
    deliverer = Deliverer(client, KEYS, 100_000, 3600)
    return await process_document(deliverer, spec, fetched, limits=Limits(fast_parser=fast))


@pytest.mark.parametrize("feed", [0, 1], ids=["rss", "atom"])
async def test_items_stored_by_feedparser_are_unchanged_for_the_fast_path(
        client: aioredis.Redis, feed: int) -> None:
    body = feed_body(FarmSpec(feeds=2, items=8), feed, 0)
    first = await _process(client, body, fast=False)
    assert first.result.new == 8
    again = await _process(client, body, fast=True)
    assert (again.result.new, again.result.updated, again.result.unchanged) == (0, 0, 8)
    assert len(await stream_records(client, KEYS)) == 8


async def test_a_changed_fingerprint_with_the_same_story_is_not_delivered_again(
        client: aioredis.Redis) -> None:
    body = feed_body(FarmSpec(feeds=2, items=5), 0, 0)
    await _process(client, body, fast=False)
    seen = KEYS.item_states("farm-0")
    fields = {f: raw for f, raw in (await client.hgetall(seen)).items() if not f.startswith(b"#")}
    assert len(fields) == 5
    for field, raw in fields.items():  # as if the other parser had produced other raw entries
        state = parse_state(raw)
        await client.hset(seen, field, pack_state(state.version, state.content_hash, "other-fingerprint",
                                                  state.seen_day))
    again = await _process(client, body, fast=True)
    assert (again.result.new, again.result.updated, again.delivered) == (0, 0, [])
    assert len(await stream_records(client, KEYS)) == 5
    other = digest8("other-fingerprint").hex()
    for field in fields:  # the fingerprint is the fast path's now: next time not even renormalized
        assert parse_state(await client.hget(seen, field)).fingerprint != other
