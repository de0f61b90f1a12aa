"""Entries known by their bytes are not read again, and nothing else changes (#21).

The real pipeline on the private Redis: a feed's second document, with a few
new entries among the old ones, reads only the new ones (workers/rawseen.py);
an edited entry is delivered as an update; a lost map, a lost state, a new
salt or a feed element after the entries all give exactly what the full path
gives (the records, the counts, the adaptive polling interval).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

import workers.fastfeed.elements as elements
from bench.farm import FarmSpec, feed_body
from ingest.deliver.publish import Deliverer
from ingest.deliver.state import parse_state
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched, item_to_json
from workers import rawseen
from workers.fastfeed import KnownEntries, SkippedEntry, parse_fast
from workers.limits import Limits
from workers.pipeline import ProcessedFeed, process_document

SPEC = FeedSpec("raw-1", "http://raw.example/feed.xml")
NOW = time.time()


def _rss(items: list[tuple[str, str, float]], tail: str = "", lang: str = "") -> bytes:
    """An RSS document of (guid, text, hours ago) items; `tail` after the items."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>Story {guid}</title><link>http://raw.example/{guid}</link>"
        f"<pubDate>{format_datetime(datetime.fromtimestamp(NOW - hours * 3600, UTC), usegmt=True)}</pubDate>"
        f"<description>&lt;p&gt;{text}&lt;/p&gt;</description></item>"
        for guid, text, hours in items
    )
    root = f' xml:lang="{lang}"' if lang else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"{root}><channel><title>Raw</title>'
            f"<link>http://raw.example/</link>{body}{tail}</channel></rss>").encode()


# Old entries spread over weeks, new ones within the hour: the adaptive interval
# depends on which of them it sees (publishing_interval counts the last week's).
OLD = [(f"old-{i}", f"An old story number {i} with some words in it.", 24.0 * 3 * (i + 1)) for i in range(7)]
NEW = [(f"new-{i}", f"A new story number {i}, published just now.", 0.1 * (i + 1)) for i in range(3)]


async def _process(client: aioredis.Redis, body: bytes, keys: Keys, fetched_at: str = "2026-01-01T00:00:00Z",
                   fast: bool = True) -> ProcessedFeed:
    fetched = Fetched(SPEC.url, SPEC.url, 200, {"content-type": "application/rss+xml"}, body, fetched_at)
    deliverer = Deliverer(client, keys, 100_000, 3600)
    return await process_document(deliverer, SPEC, fetched, limits=Limits(fast_parser=fast))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the entries the fast reader reads (builds a dict for)."""
    count = [0]
    entry = elements._entry

    def counted(*args: Any) -> None:
        count[0] += 1
        entry(*args)

    monkeypatch.setattr(elements, "_entry", counted)
    return count


def _records(processed: ProcessedFeed) -> list[dict[str, Any]]:
    return sorted((orjson.loads(item_to_json(i)) for i in processed.delivered), key=lambda r: r["id"])


def _summary(processed: ProcessedFeed) -> tuple[Any, ...]:
    r = processed.result
    return (r.entries, r.new, r.updated, r.unchanged, r.publish_interval, r.feed_hint, processed.title,
            _records(processed))


async def _skipped_counter(client: aioredis.Redis, keys: Keys) -> int:
    return int(await client.hget(keys.stats, "entries_skipped_raw") or 0)


async def test_unchanged_entries_are_not_read_and_are_counted(client: aioredis.Redis, reads: list[int]) -> None:
    keys = Keys("raw")
    first = await _process(client, _rss(OLD), keys)
    assert (first.result.new, reads[0]) == (7, 7)
    assert await client.hlen(keys.raw_seen(SPEC.feed_id)) == 7
    ttl = await client.pttl(keys.raw_seen(SPEC.feed_id))
    assert 0 < ttl <= 3600 * 1000

    reads[0] = 0
    second = await _process(client, _rss(NEW + OLD), keys)
    assert (second.result.new, second.result.updated, second.result.unchanged) == (3, 0, 7)
    assert reads[0] == 3  # only the new entries were read
    assert await _skipped_counter(client, keys) == 7
    assert {r["guid"] for r in _records(second)} == {"new-0", "new-1", "new-2"}
    # the map now holds this document's entries, and only them
    assert await client.hlen(keys.raw_seen(SPEC.feed_id)) == 10

    reads[0] = 0
    third = await _process(client, _rss(NEW + OLD[:3]), keys)  # old entries dropped out
    assert (third.result.new, third.result.unchanged, reads[0]) == (0, 6, 0)
    assert await client.hlen(keys.raw_seen(SPEC.feed_id)) == 6


async def test_an_edited_entry_is_read_and_delivered_as_an_update(client: aioredis.Redis,
                                                                  reads: list[int]) -> None:
    keys = Keys("raw")
    await _process(client, _rss(OLD), keys)
    edited = [(guid, text + " Corrected." if guid == "old-2" else text, hours) for guid, text, hours in OLD]
    reads[0] = 0
    again = await _process(client, _rss(edited), keys)
    assert reads[0] == 1
    assert (again.result.new, again.result.updated, again.result.unchanged) == (0, 1, 6)
    [record] = _records(again)
    assert (record["guid"], record["version"]) == ("old-2", 2)
    assert "Corrected." in record["content_text"]


async def _scenario(client: aioredis.Redis, keys: Keys, between: Any = None) -> list[tuple[Any, ...]]:
    """The first document, `between(keys)`, then a changed one and an edited one: what each gave."""
    out = [_summary(await _process(client, _rss(OLD), keys))]
    if between is not None:
        await between(keys)
    out.append(_summary(await _process(client, _rss(NEW + OLD), keys, "2026-01-01T00:10:00Z")))
    edited = [(g, t + " More." if g == "new-1" else t, h) for g, t, h in NEW + OLD]
    out.append(_summary(await _process(client, _rss(edited), keys, "2026-01-01T00:20:00Z")))
    return out


async def test_a_lost_map_gives_the_same_records_counts_and_interval(client: aioredis.Redis,
                                                                      reads: list[int]) -> None:
    async def lose_map(keys: Keys) -> None:
        assert await client.delete(keys.raw_seen(SPEC.feed_id)) == 1

    with_map = await _scenario(client, Keys("kept"))
    reads[0] = 0
    without = await _scenario(client, Keys("lost"), lose_map)
    assert reads[0] == 7 + 10 + 1  # the second document read in full, the third only its edit
    assert without == with_map
    assert with_map[1][:4] == (10, 3, 0, 7)
    assert with_map[2][:4] == (10, 0, 1, 9)


async def test_skipped_entries_count_for_the_adaptive_interval(client: aioredis.Redis) -> None:
    keys = Keys("raw")
    await _process(client, _rss(OLD), keys)
    second = await _process(client, _rss(NEW + OLD), keys)
    assert await _skipped_counter(client, keys) == 7
    full = await _process(client, _rss(NEW + OLD), Keys("other"), fast=False)  # feedparser, no map
    assert second.result.publish_interval == full.result.publish_interval
    # the times of the skipped entries are in it: three recent ones alone give another interval
    alone = await _process(client, _rss(NEW), Keys("alone"), fast=False)
    assert second.result.publish_interval != alone.result.publish_interval


async def test_a_lost_state_reads_every_entry_again(client: aioredis.Redis, reads: list[int]) -> None:
    async def lose_state(keys: Keys) -> None:
        assert await client.delete(keys.item_states(SPEC.feed_id)) == 1

    with_state = await _scenario(client, Keys("kept"))
    reads[0] = 0
    lost = await _scenario(client, Keys("lost"), lose_state)
    assert lost[1][:4] == (10, 10, 0, 0)  # every entry delivered again, as without the map
    assert lost[2] == with_state[2]
    # the second document: its 3 new entries, then (the map's 7 disagreeing with the state) all 10
    assert reads[0] == 7 + (3 + 10) + 1


async def _as_states_of_before_13(client: aioredis.Redis, keys: Keys) -> int:
    """Move the feed's states out of its hash into the keys of before #13 (version|hash|fp)."""
    states = {f: raw for f, raw in (await client.hgetall(keys.item_states(SPEC.feed_id))).items()
              if not f.startswith(b"#")}  # the hash's own marks stay
    for field, raw in states.items():
        state = parse_state(raw)
        await client.set(keys.item_state(field.hex()),
                         f"{state.version}|{state.content_hash}|{state.fingerprint}")
        await client.hdel(keys.item_states(SPEC.feed_id), field)
    return len(states)


async def test_skipped_entries_leave_the_keys_of_before_13_unread(client: aioredis.Redis) -> None:
    keys = Keys("raw")
    await _process(client, _rss(OLD), keys)
    deliverer = Deliverer(client, keys, 100_000, 3600)
    ids = [f.hex() for f in await client.hkeys(keys.item_states(SPEC.feed_id)) if not f.startswith(b"#")]
    assert await _as_states_of_before_13(client, keys) == 7
    unread = await deliverer.states(SPEC.feed_id, ids, in_hash=set(ids[:3]))
    assert [s.version for s in unread] == [0, 0, 0, 1, 1, 1, 1]  # the first three not looked up
    assert all([await client.exists(keys.item_state(i)) for i in ids[:3]])  # nor moved
    read = await deliverer.states(SPEC.feed_id, ids)
    assert [s.version for s in read] == [1] * 7
    assert None not in await client.hmget(keys.item_states(SPEC.feed_id), [bytes.fromhex(i) for i in ids])
    assert not any([await client.exists(keys.item_state(i)) for i in ids])  # moved into the hash


async def test_a_skipped_entry_whose_state_is_of_before_13_is_found_by_the_full_path(
        client: aioredis.Redis, reads: list[int]) -> None:
    # The map's entries skipped, their states only in the keys of before #13 (as after a
    # rollback and forward again): the hash misses them, so the document is read in full,
    # the old keys are read and moved, and nothing is delivered twice.
    keys = Keys("raw")
    await _process(client, _rss(OLD), keys)
    ids = [f.hex() for f in await client.hkeys(keys.item_states(SPEC.feed_id)) if not f.startswith(b"#")]
    assert await _as_states_of_before_13(client, keys) == 7
    reads[0] = 0
    second = await _process(client, _rss(NEW + OLD), keys)
    assert (second.result.new, second.result.updated, second.result.unchanged) == (3, 0, 7)
    assert reads[0] == 3 + 10
    assert not any([await client.exists(keys.item_state(i)) for i in ids])  # moved into the hash


async def test_a_new_salt_takes_the_full_path(client: aioredis.Redis, reads: list[int],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    keys = Keys("raw")
    await _process(client, _rss(OLD), keys)
    monkeypatch.setattr(rawseen, "RAW_VERSION", rawseen.RAW_VERSION + 1)
    reads[0] = 0
    second = await _process(client, _rss(NEW + OLD), keys)
    assert reads[0] == 10
    assert await _skipped_counter(client, keys) == 0
    assert (second.result.new, second.result.unchanged) == (3, 7)
    reads[0] = 0
    await _process(client, _rss(NEW + OLD), keys)  # the map was rewritten under the new salt
    assert reads[0] == 0


async def test_a_feed_element_after_the_entries_reads_the_document_whole(client: aioredis.Redis,
                                                                         reads: list[int]) -> None:
    keys = Keys("raw")
    tail = "<ttl>30</ttl><title>Raw, renamed</title>"
    await _process(client, _rss(OLD, tail), keys)
    reads[0] = 0
    second = await _process(client, _rss(NEW + OLD, tail), keys)
    assert reads[0] == 3 + 10  # skipping stopped at the <ttl>, then the document was read whole
    await _process(client, _rss(OLD, tail), Keys("other"), fast=False)
    full = await _process(client, _rss(NEW + OLD, tail), Keys("other"), fast=False)
    assert _summary(second) == _summary(full)
    assert second.result.feed_hint == 1800 and second.result.new == 3


def test_raw_keys_depend_on_the_bytes_and_the_document_context() -> None:
    def parse(body: bytes, values: dict[bytes, Any] | None = None, salt: bytes = b"s") -> Any:
        result = parse_fast(body, {}, KnownEntries(salt, values or {}))
        assert result is not None
        return result

    body = feed_body(FarmSpec(feeds=2, items=6), 1, 0)  # Atom, xml:lang="en"
    plain = parse_fast(body, {})
    assert plain is not None and "entry_raws" not in plain
    keyed = parse(body)
    raws = keyed["entry_raws"]
    assert len(set(raws)) == 6 and all(len(r) == 16 for r in raws)
    assert keyed["entries"] == plain["entries"] and keyed["feed"] == plain["feed"]
    skipping = parse(body, {raws[1]: "one", raws[4]: "four"})
    assert skipping["entry_raws"] == raws
    assert [e for i, e in enumerate(skipping["entries"]) if i not in (1, 4)] == \
        [e for i, e in enumerate(plain["entries"]) if i not in (1, 4)]
    assert skipping["entries"][1] == SkippedEntry(raws[1], "one")
    assert skipping["entries"][4] == SkippedEntry(raws[4], "four")
    assert skipping["feed"] == plain["feed"]
    # the context: another salt, another inherited language, another namespace binding
    assert parse(body, salt=b"t")["entry_raws"] != raws
    assert parse(body.replace(b'xml:lang="en"', b'xml:lang="de"'))["entry_raws"] != raws
    rss = _rss(OLD)
    bound = rss.replace(b"<rss ", b'<rss xmlns:dc="http://purl.org/dc/elements/1.1/" ')
    assert parse(rss)["entry_raws"] != parse(bound)["entry_raws"]
    # escaping is not content: the same tree gives the same key
    assert parse(rss.replace(b"old story", b"&#111;ld story"))["entry_raws"] == parse(rss)["entry_raws"]
    assert parse(rss.replace(b"old story number 3", b"old story number 33"))["entry_raws"] != \
        parse(rss)["entry_raws"]


async def test_a_farm_round_delivers_what_the_full_path_delivers(client: aioredis.Redis) -> None:
    """The benchmark's mixed phase, RSS and Atom: the map's path and feedparser's give the same records."""
    spec = FarmSpec(feeds=2, items=12, changed=1.0, new_items=3)
    for feed in (0, 1):
        outs = []
        for name, fast in (("map", True), ("full", False)):
            keys = Keys(f"{name}{feed}")
            await _process(client, feed_body(spec, feed, 0), keys, fast=fast)
            outs.append(_summary(await _process(client, feed_body(spec, feed, 1), keys, fast=fast)))
        # the interval is half the newest item's age here (the farm's items are older than a week)
        assert outs[0][4] == pytest.approx(outs[1][4], abs=5)
        assert outs[0][:4] + outs[0][5:] == outs[1][:4] + outs[1][5:]
        assert outs[0][1:4] == (3, 0, 9)


def _fixtures() -> list[Path]:
    from tests.test_fastfeed import FIXTURES
    return FIXTURES


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_skipping_any_entries_of_a_fixture_leaves_the_rest_as_read_in_full(path: Path) -> None:
    """Every fixture the fast reader takes: with every other entry known, the feed and the
    entries read are those of the whole reading (a feed element after an entry included)."""
    body = path.read_bytes()
    whole = parse_fast(body, {}, KnownEntries(b"s", {}))
    if whole is None:
        return  # feedparser's: the map is neither used nor changed
    raws = whole["entry_raws"]
    assert len(raws) == len(whole["entries"])
    for parity in (0, 1):
        known = {raw: i for i, raw in enumerate(raws) if i % 2 == parity}
        skipping = parse_fast(body, {}, KnownEntries(b"s", known))
        assert skipping is not None
        assert skipping["feed"] == whole["feed"] and skipping["entry_raws"] == raws
        for i, (entry, full) in enumerate(zip(skipping["entries"], whole["entries"], strict=True)):
            if isinstance(entry, SkippedEntry):
                assert entry == SkippedEntry(raws[i], known[raws[i]])
            else:
                assert entry == full
