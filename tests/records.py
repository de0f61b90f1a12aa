"""Synthetic item records and stream filling, for the delivery and storage tests."""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from ingest.deliver.streamcodec import encode_item
from ingest.keys import Keys


def record(i: int, *, version: int = 1, feed: str = "feeda", text: str = "",
           published: str | None = None, language: str | None = "en",
           cluster: str | None = None, tags: list[str] | None = None) -> dict[str, Any]:
    item_id = f"item{i:05d}"
    return {
        "id": item_id, "version": version, "feed_id": feed, "feed_url": f"http://ex.example/{feed}",
        "feed_title": feed.upper(), "url": f"http://ex.example/{i}", "link": f"http://ex.example/{i}",
        "guid": str(i), "title": f"Story {i} v{version}", "authors": ["Desk"],
        "published_at": published or f"2025-01-{1 + i % 28:02d}T10:00:00Z", "updated_at": None,
        "fetched_at": "2026-01-01T00:00:00.000000Z", "summary": f"Summary {i}",
        "content_html": f"<p>{text or 'Body'} {i}</p>", "content_text": f"{text or 'Body'} {i}",
        "language": language, "categories": ["News"], "enclosures": [],
        "content_hash": f"h{i}v{version}", "cluster_id": cluster or item_id, "tags": tags or [],
    }


async def fill_stream(client: aioredis.Redis, keys: Keys, records: list[dict[str, Any]],
                      stream_record: str = "json") -> list[bytes]:
    """XADD each record as the deliverer does (field `item`, its JSON or with `stream_record`
    "zstd" a zstd frame of it); return the entry ids."""
    ids: list[bytes] = []
    for start in range(0, len(records), 500):
        async with client.pipeline(transaction=False) as pipe:
            for r in records[start:start + 500]:
                pipe.xadd(keys.items_stream, {"item": encode_item(orjson.dumps(r), stream_record)})
            ids += await pipe.execute()
    return ids
