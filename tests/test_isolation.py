"""One entry the normalizer cannot handle costs that entry only: logged, counted, skipped."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from ingest.deliver.publish import Deliverer
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched
from ingest.settings import Settings
from workers import pipeline


def _feed() -> bytes:
    items = "".join(
        f"<item><guid>g{i}</guid><title>Story {i}</title>"
        f"<description>Text {i}.</description></item>"
        for i in range(3)
    )
    return f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


async def test_an_entry_that_fails_normalization_does_not_cost_the_feed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = pipeline.normalize_entry

    def failing_on_story_1(entry: Any, *args: Any) -> Any:
        # Stands in for a normalizer bug on one odd entry (the property tests find none).
        if entry.get("title") == "Story 1":
            raise ValueError("odd entry")
        return real(entry, *args)

    monkeypatch.setattr(pipeline, "normalize_entry", failing_on_story_1)
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        keys = Keys(settings.namespace)
        deliverer = Deliverer(client, keys, settings.stream_maxlen, 3600)
        spec = FeedSpec("iso", "http://ex.example/iso.xml")
        fetched = Fetched(spec.url, spec.url, 200, {}, _feed(), "2026-01-01T00:00:00Z")
        processed = await pipeline.process_document(deliverer, spec, fetched)
        assert sorted(i.title for i in processed.delivered) == ["Story 0", "Story 2"]
        assert (await client.hgetall(keys.stats))[b"normalize_errors"] == b"1"
        assert "could not be normalized" in caplog.text and "odd entry" in caplog.text
    finally:
        await client.aclose()
