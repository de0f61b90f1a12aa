"""The record on the stream (#21): zstd frames with the shipped dictionary, losslessly, and
every consumer handing on the JSON, for compressed entries, JSON entries and a mix of both."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
import zstandard

from ingest.deliver.publish import Deliverer
from ingest.deliver.streamcodec import (
    DICT_ID,
    MAX_RECORD_BYTES,
    ZSTD_MAGIC,
    decode_item,
    dictionary,
    encode_item,
    frame_dict_id,
)
from ingest.deliver.subscribe import ItemFilter, replay
from ingest.deliver.webhooks import WebhookConsumer, WebhookSpec
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from ingest.settings import Settings, load_settings
from ingest.store.consume import SinkConsumer
from ingest.store.sqlite import SQLiteSink
from tests.conftest import DATA_DIR
from tests.corpus import GOLDEN_DIR
from tests.helpers import run_cli, stored_rows
from tests.records import fill_stream, record
from tests.test_web_sse import _open
from tests.test_webhooks import SECRET, Receiver, _run_until
from tests.webserver import api_server
from workers.pipeline import process_document


def _golden_json() -> list[bytes]:
    """Every golden and stand-in record, serialized as the deliverer serializes records."""
    files = sorted(GOLDEN_DIR.glob("*.json")) + sorted((DATA_DIR / "feeds").glob("*.expected.json"))
    records: list[Any] = [r for path in files for r in orjson.loads(path.read_bytes())]
    assert len(records) > 100
    return [orjson.dumps(r) for r in records]


def _with_dict_id(frame: bytes, dict_id: int) -> bytes:
    """The frame with another dictionary id in its header (a 4-byte id field, as ours has)."""
    descriptor = frame[4]
    assert descriptor & 3 == 3  # Dictionary_ID_flag: 4 bytes
    at = 5 + (0 if descriptor & 0x20 else 1)  # after the window descriptor, if any
    return frame[:at] + dict_id.to_bytes(4, "little") + frame[at + 4:]


def test_every_golden_record_comes_back_byte_for_byte_from_its_frame() -> None:
    records = _golden_json()
    frames = [encode_item(r, "zstd") for r in records]
    assert all(f.startswith(ZSTD_MAGIC) and frame_dict_id(f) == DICT_ID for f in frames)
    assert [decode_item(f) for f in frames] == records
    assert sum(map(len, frames)) < sum(map(len, records)) / 2.5  # the point of it
    assert [encode_item(r, "json") for r in records] == records  # "json": the record itself
    assert [decode_item(r) for r in records] == records  # JSON entries pass through unchanged
    assert zstandard.ZstdCompressionDict(dictionary(DICT_ID)).dict_id() == DICT_ID


def test_unreadable_values_are_refused_saying_why() -> None:
    frame = encode_item(orjson.dumps(record(1)), "zstd")
    with pytest.raises(ValueError, match="dictionary 99 is not known"):
        decode_item(_with_dict_id(frame, 99))
    with pytest.raises(ValueError, match="unreadable item"):
        decode_item(ZSTD_MAGIC + b"\x00garbage")
    with pytest.raises(ValueError, match="damaged zstd frame"):
        decode_item(frame[:-5] + bytes(5))
    huge = zstandard.ZstdCompressor().compress(bytes(MAX_RECORD_BYTES + 1))  # a bomb: ~2 KB
    with pytest.raises(ValueError, match="at most"):
        decode_item(huge)
    unsized = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    with pytest.raises(ValueError, match="unknown"):
        decode_item(unsized.compress(b"{}") + unsized.flush())


def test_the_setting_takes_json_or_zstd_only() -> None:
    assert Settings().stream_record == "zstd"
    assert load_settings(environ={"INGEST_STREAM_RECORD": "json"}).stream_record == "json"
    with pytest.raises(Exception, match="stream_record"):
        load_settings(environ={"INGEST_STREAM_RECORD": "slim"})


async def _deliver_stand_in(client: aioredis.Redis, keys: Keys, stream_record: str) -> int:
    deliverer = Deliverer(client, keys, 1000, 3600, stream_record=stream_record)
    url = "http://feeds.example/rss2-mediarss.xml"
    body = (DATA_DIR / "feeds" / "rss2-mediarss.xml").read_bytes()
    result = await process_document(deliverer, FeedSpec("f" * 16, url),
                                    Fetched(url, url, 200, {}, body, "2026-01-01T00:00:00.000000Z"))
    return len(result.delivered)


async def test_delivery_compresses_the_stream_entry_and_publishes_the_json(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.items_channel)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    delivered = await _deliver_stand_in(client, keys, "zstd")
    assert delivered == 6
    stored = [fields[b"item"] for _, fields in await client.xrange(keys.items_stream)]
    assert all(v.startswith(ZSTD_MAGIC) for v in stored)
    published = []
    for _ in range(50):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message:
            published.append(message["data"])
        if len(published) == delivered:
            break
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert published == [decode_item(v) for v in stored]  # channels carry the JSON
    assert all(orjson.loads(p)["feed_id"] == "f" * 16 for p in published)

    # A consumer without ingest's code: the dictionary from Redis and any zstd library.
    shared = await client.get(keys.record_dictionary(DICT_ID))
    assert shared == dictionary(DICT_ID)
    plain = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(shared))
    assert [plain.decompress(v) for v in stored] == published

    await client.delete(keys.items_stream, keys.item_states("f" * 16))
    assert await _deliver_stand_in(client, keys, "json") == 6
    stored = [fields[b"item"] for _, fields in await client.xrange(keys.items_stream)]
    assert [orjson.loads(v)["id"] for v in stored] == [orjson.loads(p)["id"] for p in published]


async def _mixed_stream(client: aioredis.Redis, keys: Keys) -> tuple[list[dict[str, Any]], bytes]:
    """An upgrade's stream: JSON entries, then compressed ones, and one damaged frame."""
    records = [record(i, feed="a" if i % 2 else "b") for i in range(12)]
    await fill_stream(client, keys, records[:6], "json")
    [bad_id] = await fill_stream(client, keys, [record(99)], "zstd")
    frame = (await client.xrange(keys.items_stream, bad_id, bad_id))[0][1][b"item"]
    await client.xdel(keys.items_stream, bad_id)
    damaged = frame[:-5] + bytes(5)
    await client.xadd(keys.items_stream, {"item": damaged})
    await fill_stream(client, keys, records[6:], "zstd")
    return records, damaged


async def test_sink_subscribe_and_replay_give_the_json_of_json_and_compressed_entries(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    records, damaged = await _mixed_stream(client, keys)

    sink = SQLiteSink.from_url(settings.effective_storage_url)
    consumer = SinkConsumer(client, keys, sink, group="storage", consumer="c1", batch_size=5,
                            block_ms=10, claim_idle_ms=60_000, max_attempts=1)
    await consumer.ensure_group()
    for _ in range(10):  # bounded
        await consumer.step(10)
    await sink.close()
    assert consumer.stored == 12
    rows = stored_rows(settings)
    assert {r["id"]: r["title"] for r in rows.values()} == {r["id"]: r["title"] for r in records}
    [(_, dead)] = await client.xrange(keys.dead_stream)
    assert dead[b"kind"] == b"sink" and b"damaged zstd frame" in dead[b"error"]
    assert dead[b"item"] == damaged  # kept as stored

    code, out, err = await run_cli(settings, "subscribe", "--from", "0", "--no-follow")
    assert code == 0, err
    assert [orjson.loads(line) for line in out.splitlines()] == records
    assert "skipped: unreadable item: damaged zstd frame" in err

    got: list[bytes] = []
    await replay(client, keys, "0", ItemFilter(feeds=("a",)), lambda _, raw: got.append(raw), follow=False)
    assert [orjson.loads(g) for g in got] == [r for r in records if r["feed_id"] == "a"]


async def test_the_live_stream_sends_the_json_of_both_encodings_and_skips_a_damaged_entry(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    records, _ = await _mixed_stream(client, keys)
    async with api_server(settings) as api:
        response, events = await _open(api, "/api/v1/items/stream?from=0")
        got = await events.items(12)
        response.close()
    assert [orjson.loads(e["data"]) for e in got] == records


async def test_a_webhook_gets_the_json_of_a_compressed_entry_signed(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    records = [record(i) for i in range(5)]
    await fill_stream(client, keys, records, "zstd")
    receiver = Receiver(fail_first=0)
    await receiver.start()
    stop = asyncio.Event()
    spec = WebhookSpec(name="hook", url=receiver.url, secret=SECRET, start="0")
    consumer = WebhookConsumer(client, keys, spec, settings, stop, consumer="w1")
    await _run_until(consumer, stop, lambda: len(receiver.accepted) >= 5, 30)
    await receiver.stop()
    assert sorted(receiver.accepted) == sorted(f"{r['id']}:1" for r in records)
    assert receiver.bad_signatures == 0  # signed over the JSON it received


def test_the_shipped_dictionary_is_the_one_the_package_data_names() -> None:
    data = Path(__file__).resolve().parents[1] / "ingest" / "data"
    assert sorted(p.name for p in data.glob("*.zdict")) == [f"record-{DICT_ID}.zdict"]
