"""Train the zstd dictionary the item stream's compressed records use (#21).

The dictionary is trained on real records, made by the product's own code: every
item of the shared fixture feeds (../shared/fixtures/feeds, twelve real feeds in
eight languages and every format) and 150 records of the benchmark farm (five of
its feeds, so that the farm's generated text does not dominate), parsed,
normalized and delivered against a private redis-server. It mostly learns what
every record shares: the field names, the shape of dates, ids and URLs, common
HTML. Held out by feed (trained without the feed it compresses), it shrinks real
records 23% beyond zstd without a dictionary (docs/performance.md).

A dictionary, once shipped, is never changed: entries written with it must stay
readable. A new one gets a new id (--dict-id) and a new file beside the old one.

Run: .venv/bin/python bench/train_record_dict.py [--dict-id 20261205] [--out ingest/data]
     .venv/bin/python bench/train_record_dict.py --evaluate   (held out by feed; writes nothing)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import orjson
import redis.asyncio as aioredis
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.farm import FarmSpec, feed_body  # noqa: E402
from ingest.deliver.publish import Deliverer  # noqa: E402
from ingest.embedded import RedisServer  # noqa: E402
from ingest.keys import Keys  # noqa: E402
from ingest.models import FeedSpec, Fetched  # noqa: E402
from workers.pipeline import process_document  # noqa: E402

FEEDS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "feeds"
DICT_BYTES = 16_384  # 8-32 KB gave the same ratios; 16 KB is cheap to ship and to load
FARM_FEEDS = 5


def training_documents() -> list[tuple[str, bytes]]:
    docs = [(p.name, p.read_bytes()) for p in sorted(FEEDS.iterdir()) if p.suffix != ".md"]
    return docs + [(f"farm-{n}", feed_body(FarmSpec(), n, 0)) for n in range(FARM_FEEDS)]


async def records(url: str, docs: list[tuple[str, bytes]]) -> list[bytes]:
    """The JSON of every record the documents give, as the deliverer writes it."""
    client = aioredis.Redis.from_url(url)
    keys = Keys("train")
    await client.delete(keys.items_stream)
    deliverer = Deliverer(client, keys, 10_000_000, 86400, stream_record="json")
    for name, body in docs:
        link = f"https://train.example/{name}"
        await process_document(deliverer, FeedSpec(name[:16], link),
                               Fetched(link, link, 200, {}, body, "2026-01-01T00:00:00.000000Z"))
    out = [fields[b"item"] for _, fields in await client.xrange(keys.items_stream)]
    await client.aclose()
    return out


def train(samples: list[bytes], dict_id: int) -> zstandard.ZstdCompressionDict:
    # k and d fixed (no parameter search): the same samples give the same dictionary.
    chunks: list[bytes | bytearray | memoryview[int]] = list(samples)
    return zstandard.train_dictionary(DICT_BYTES, chunks, dict_id=dict_id, k=1024, d=8, level=3)


def evaluate(samples: list[bytes], farm: list[bytes]) -> None:
    """Mean frame size on records of feeds the dictionary never saw: each fixture feed
    compressed with a dictionary trained without it; the farm's feeds 100-139 (not
    trained on) with the dictionary trained on everything; against no dictionary."""
    by_feed: dict[str, list[bytes]] = {}
    for sample in samples:
        by_feed.setdefault(orjson.loads(sample)["feed_id"], []).append(sample)
    fixtures = {f: s for f, s in by_feed.items() if not f.startswith("farm-")}
    plain = zstandard.ZstdCompressor(level=3)
    raw = with_dict = without = 0
    n = 0
    for feed, held_out in fixtures.items():
        rest = [s for f, group in by_feed.items() if f != feed for s in group]
        compressor = zstandard.ZstdCompressor(level=3, dict_data=train(rest, 1))
        raw += sum(map(len, held_out))
        with_dict += sum(len(compressor.compress(s)) for s in held_out)
        without += sum(len(plain.compress(s)) for s in held_out)
        n += len(held_out)
    print(f"fixtures, each feed held out ({len(fixtures)} feeds, {n} records): JSON {raw / n:,.0f} B, "
          f"zstd {without / n:,.0f} B, zstd + dictionary {with_dict / n:,.0f} B")
    compressor = zstandard.ZstdCompressor(level=3, dict_data=train(samples, 1))
    print(f"farm feeds 100-139 ({len(farm)} records): JSON {sum(map(len, farm)) / len(farm):,.0f} B, "
          f"zstd {sum(len(plain.compress(s)) for s in farm) / len(farm):,.0f} B, zstd + dictionary "
          f"{sum(len(compressor.compress(s)) for s in farm) / len(farm):,.0f} B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dict-id", type=int, default=20261205)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "ingest" / "data")
    parser.add_argument("--evaluate", action="store_true", help="held-out figures only; write nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), Path(tmp) / "redis.sock", appendonly=False)
        server.start()
        try:
            samples = asyncio.run(records(server.url, training_documents()))
            farm = (asyncio.run(records(server.url, [(f"farm-{n}", feed_body(FarmSpec(), n, 0))
                                                     for n in range(100, 140)]))
                    if args.evaluate else [])
        finally:
            server.stop()
    if args.evaluate:
        evaluate(samples, farm)
        return
    trained = train(samples, args.dict_id)
    path = args.out / f"record-{args.dict_id}.zdict"
    path.write_bytes(trained.as_bytes())
    print(f"{len(samples)} records, mean {sum(map(len, samples)) / len(samples):,.0f} bytes -> {path} "
          f"({len(trained.as_bytes()):,} bytes, id {trained.dict_id()})")


if __name__ == "__main__":
    main()
