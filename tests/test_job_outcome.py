"""A job's outcome in the document's last round trip (decision 159) and the cluster index's
entries in the delivery's (decision 160): the same writes as the separate calls of before."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ingest.deliver.publish import Deliverer
from ingest.deliver.state import ItemState
from ingest.errors import ParseError
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched, Item
from ingest.poll.registry import add_feed, record_success
from ingest.redis_conn import ScriptCall, run_script
from ingest.settings import Settings
from tests.helpers import stream_records
from workers.clusters.index import ClusterIndex
from workers.pipeline import process_document

URL = "http://ex.example/outcome.xml"


def _feed(guids: list[str], title: str = "Outcome &amp; news") -> bytes:
    """Items of the last hours: the adaptive interval is the week's share, not the clock's."""
    body = "".join(
        f"<item><guid>{g}</guid><title>Story {g} about the harbour</title><link>http://ex.example/{g}</link>"
        f"<pubDate>{formatdate(time.time() - 3600 * (n + 1), usegmt=True)}</pubDate>"
        f"<description>The harbour story {g} in words that repeat: ships, cranes, tides.</description></item>"
        for n, g in enumerate(guids)
    )
    return (f'<rss version="2.0"><channel><title>{title}</title><ttl>45</ttl>{body}'
            "</channel></rss>").encode()


def _fetched(body: bytes, at: str) -> Fetched:
    return Fetched(URL, URL, 200, {"content-type": "application/rss+xml"}, body, at)


def _parts(client: aioredis.Redis, keys: Keys) -> tuple[Deliverer, ClusterIndex]:
    settings = Settings()
    return (Deliverer(client, keys, 10_000, settings.item_retention_seconds),
            ClusterIndex.from_settings(client, keys, settings))


def _counters(raw: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """The stats without the measured seconds (CPU time differs between any two runs)."""
    return {k: v for k, v in raw.items() if not k.endswith(b"_sum")}


async def _job(client: aioredis.Redis, keys: Keys, spec: FeedSpec, fetched: Fetched, joined: bool) -> Any:
    """One job's processing as workers/tasks.py does it now (`joined`) or did before."""
    deliverer, clusters = _parts(client, keys)
    processed = await process_document(deliverer, spec, fetched, clusters, note_success=joined)
    if not joined:
        await record_success(client, keys, processed.result, processed.title,
                             fetched.fetched_at, fetched.status)
    return processed


async def test_the_outcome_and_counters_are_written_as_by_record_success(
    settings: Settings, client: aioredis.Redis
) -> None:
    old, new = Keys("old"), Keys("new")
    results = {}
    for keys, joined in ((old, False), (new, True)):
        feed_id, _ = await add_feed(client, keys, URL, interval=600)
        await client.hset(keys.feed(feed_id), mapping={"consecutive_errors": 2, "last_error": "boom",
                                                       "added_at": "2026-01-01T00:00:00Z"})
        spec = FeedSpec(feed_id, URL)
        first = await _job(client, keys, spec, _fetched(_feed(["a", "b", "c"]), "2026-01-05T06:00:00Z"), joined)
        second = await _job(client, keys, spec, _fetched(_feed(["d", "a", "b", "c"]), "2026-01-05T06:10:00Z"),
                            joined)
        results[joined] = (first.result.as_dict(), second.result.as_dict(),
                           await client.hgetall(keys.feed(feed_id)), _counters(await client.hgetall(keys.stats)))
    assert results[True] == results[False]
    _, _, state, counters = results[True]
    assert state[b"items"] == b"4" and state[b"consecutive_errors"] == b"0" and state[b"last_error"] == b""
    assert state[b"title"] == b"Outcome & news" and state[b"feed_min_interval"] == b"2700.0"
    assert counters[b"fetches_ok"] == b"2"


async def test_an_unregistered_feed_gets_no_hash_only_the_counter(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys("loose")
    spec = FeedSpec("f" * 16, URL)
    await _job(client, keys, spec, _fetched(_feed(["a"]), "2026-01-05T06:00:00Z"), True)
    assert not await client.exists(keys.feed(spec.feed_id))
    assert (await client.hgetall(keys.stats))[b"fetches_ok"] == b"1"


async def test_without_note_success_nothing_is_noted(settings: Settings, client: aioredis.Redis) -> None:
    keys = Keys("plain")
    feed_id, _ = await add_feed(client, keys, URL)
    deliverer, clusters = _parts(client, keys)
    await process_document(deliverer, FeedSpec(feed_id, URL), _fetched(_feed(["a"]), "2026-01-05T06:00:00Z"),
                           clusters)
    assert b"last_status" not in await client.hgetall(keys.feed(feed_id))
    assert b"fetches_ok" not in await client.hgetall(keys.stats)


@pytest.mark.parametrize("failure", ["parse", "delivery"])
async def test_a_failed_document_is_not_noted_as_a_success(
    settings: Settings, client: aioredis.Redis, failure: str
) -> None:
    keys = Keys(f"fail-{failure}")
    feed_id, _ = await add_feed(client, keys, URL)
    await client.hset(keys.feed(feed_id), mapping={"consecutive_errors": 3, "last_error": "before"})
    before = await client.hgetall(keys.feed(feed_id))
    body = _feed(["a", "b"])
    if failure == "parse":
        body = b"<html><body>not a feed</body></html>"
    else:  # the delivery script meets a key of the wrong type and raises
        await client.set(keys.item_states(feed_id), b"not a hash")
    with pytest.raises(ParseError if failure == "parse" else ResponseError):
        await _job(client, keys, FeedSpec(feed_id, URL), _fetched(body, "2026-01-05T06:00:00Z"), True)
    assert await client.hgetall(keys.feed(feed_id)) == before
    assert b"fetches_ok" not in await client.hgetall(keys.stats)




class _WrittenAtOnce(ClusterIndex):
    """The index as before decision 160: its entries written in a round trip of their own."""

    async def assign_deferred(self, items: Sequence[Item], now: float | None = None) -> tuple[list[Item], None]:
        assigned, write = await super().assign_deferred(items, now)
        if write is not None:
            await run_script(self.redis, write)
        return assigned, None


async def _index_entries(client: aioredis.Redis, keys: Keys) -> dict[bytes, bytes]:
    prefix = keys.cluster_entry(b"")
    return {key[len(prefix):]: await client.get(key) async for key in client.scan_iter(match=prefix + b"*")}


async def test_index_entries_and_records_are_those_written_before_the_delivery(
    settings: Settings, client: aioredis.Redis
) -> None:
    """Two feeds carrying copies of the same stories, the second feed's copies joining the
    first's clusters: the same records and the same index entries as the separate write."""
    seen: dict[str, Any] = {}
    body = _feed(["a", "b", "c"])  # once: its dates are the clock's
    for name, index_class in (("apart", _WrittenAtOnce), ("joined", ClusterIndex)):
        keys = Keys(name)
        deliverer = Deliverer(client, keys, 10_000, 86400)
        index = index_class.from_settings(client, keys, Settings())
        for feed in ("one", "two"):
            url = f"http://{feed}.example/feed.xml"
            fetched = Fetched(url, url, 200, {}, body.replace(b"/a<", b"/a" + feed.encode() + b"<"),
                              "2026-01-05T06:00:00Z")
            await process_document(deliverer, FeedSpec(feed, url), fetched, index)
        seen[name] = (await stream_records(client, keys), await _index_entries(client, keys))
    records, entries = seen["joined"]
    assert seen["joined"] == seen["apart"]
    assert len(records) == 6 and len(entries) == 6
    assert len({r["cluster_id"] for r in records}) == 3  # each story's copies in one cluster


_NOT_YET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('ERR the state hash is not there yet') end
redis.call('SET', KEYS[2], 'written')
return 1
"""
_NEVER = "return redis.error_reply('ERR this write always fails')"


def _items(feed_id: str, n: int) -> list[tuple[Item, str]]:
    template = Item(
        id="", version=1, feed_id=feed_id, feed_url="http://ex.example/f", feed_title="f",
        url=None, link=None, guid=None, title="", authors=[], published_at=None, updated_at=None,
        fetched_at="2026-01-01T00:00:00Z", summary="", content_html="", content_text="",
        language=None, categories=[], enclosures=[], content_hash="", cluster_id="",
    )
    return [(dataclasses.replace(template, id=f"{feed_id}{i:030d}", title=f"story {i}", content_hash=f"{i:032x}",
                                 cluster_id=f"{feed_id}{i:030d}"), f"{i:016x}") for i in range(n)]


_NEVER_SEEN = ItemState(0, "", "")


@pytest.mark.parametrize("script", ["not yet", "never"])
async def test_a_write_failing_in_the_deliverys_round_trip_leaves_the_delivery_and_is_counted(
    settings: Settings, client: aioredis.Redis, caplog: pytest.LogCaptureFixture, script: str
) -> None:
    """A `before` call that fails after the delivery ran in the same trip: the items stay
    delivered (the job's retry would find them so and never send the call again), the call
    runs once more alone (here it then succeeds, or fails again), logged and counted."""
    keys = Keys(f"before-{script.replace(' ', '-')}")
    deliverer = Deliverer(client, keys, 10_000, 86400)
    feed_id = "ff"
    marker = f"{keys.ns}:marker"
    call: ScriptCall = (_NOT_YET if script == "not yet" else _NEVER, [keys.item_states(feed_id), marker], [])
    await client.script_load(call[0])  # else its NOSCRIPT retry runs it after the delivery
    candidates = _items(feed_id, 3)
    with caplog.at_level(logging.WARNING, logger="ingest.deliver.publish"):
        delivered = await deliverer.deliver(feed_id, candidates, [_NEVER_SEEN] * 3, before=[call])
    assert [item.id for item in delivered] == [item.id for item, _ in candidates]
    assert len(await stream_records(client, keys)) == 3
    stats = await client.hgetall(keys.stats)
    if script == "not yet":
        assert await client.get(marker) == b"written"
        assert stats[b"deferred_write_errors"] == b"1" and b"deferred_writes_lost" not in stats
        assert "done again alone" in caplog.text
    else:
        assert stats[b"deferred_writes_lost"] == b"1" and b"deferred_write_errors" not in stats
        assert "this write always fails" in caplog.text and "delivered without it" in caplog.text


async def test_a_failed_delivery_raises_and_delivers_nothing_with_the_writes_before_it(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys("before-failed")
    deliverer = Deliverer(client, keys, 10_000, 86400)
    feed_id = "fe"
    marker = f"{keys.ns}:marker"
    await client.set(keys.item_states(feed_id), b"not a hash")
    call: ScriptCall = ("redis.call('SET', KEYS[1], 'written') return 1", [marker], [])
    with pytest.raises(ResponseError):
        await deliverer.deliver(feed_id, _items(feed_id, 2), [_NEVER_SEEN] * 2, before=[call])
    assert await stream_records(client, keys) == []
    assert await client.get(marker) == b"written"  # ran: idempotent, the retry writes it again
