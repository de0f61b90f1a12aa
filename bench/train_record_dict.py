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
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

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


async def records(url: str) -> list[bytes]:
    """The JSON of every record the documents give, as the deliverer writes it."""
    client = aioredis.Redis.from_url(url)
    keys = Keys("train")
    deliverer = Deliverer(client, keys, 10_000_000, 86400, stream_record="json")
    docs = [(p.name, p.read_bytes()) for p in sorted(FEEDS.iterdir()) if p.suffix != ".md"]
    docs += [(f"farm-{n}", feed_body(FarmSpec(), n, 0)) for n in range(FARM_FEEDS)]
    for name, body in docs:
        link = f"https://train.example/{name}"
        await process_document(deliverer, FeedSpec(name[:16], link),
                               Fetched(link, link, 200, {}, body, "2026-01-01T00:00:00.000000Z"))
    out = [fields[b"item"] for _, fields in await client.xrange(keys.items_stream)]
    await client.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dict-id", type=int, default=20261205)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "ingest" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), Path(tmp) / "redis.sock", appendonly=False)
        server.start()
        try:
            samples = asyncio.run(records(server.url))
        finally:
            server.stop()
    # k and d fixed (no parameter search): the same samples give the same dictionary.
    trained = zstandard.train_dictionary(DICT_BYTES, samples, dict_id=args.dict_id, k=1024, d=8, level=3)
    path = args.out / f"record-{args.dict_id}.zdict"
    path.write_bytes(trained.as_bytes())
    print(f"{len(samples)} records, mean {sum(map(len, samples)) / len(samples):,.0f} bytes -> {path} "
          f"({len(trained.as_bytes()):,} bytes, id {trained.dict_id()})")


if __name__ == "__main__":
    main()
