"""Clustering end to end: real HTTP server -> arq worker (fetch_once) -> Redis stream.

The worker builds its cluster index from Settings (workers/context.py), so the
threshold setting is observable: at the default the seed's copies from three
feeds share one cluster; at 0.99 only identical texts would.
"""

from __future__ import annotations

import dataclasses

import pytest
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from tests.feedserver import FeedServer
from tests.helpers import stream_records

PATHS = [
    "data/seed-yonhap.xml",
    "data/clusters/edited-headline.xml",
    "data/clusters/paragraph-added.xml",
    "data/clusters/same-topic-other-stories.xml",
]


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings with this test's cluster threshold."""
    return dataclasses.replace(settings, cluster_threshold=request.param)


@pytest.mark.parametrize(
    ("settings", "copies_share"), [(0.5, True), (0.99, False)], indirect=["settings"]
)
async def test_worker_clusters_copies_from_different_feeds(
    settings: Settings, feed_server: FeedServer, worker: None, copies_share: bool
) -> None:
    pool = await connect_arq(settings)
    try:
        for path in PATHS:  # one after the other: the index sees the earlier copies
            job = await pool.enqueue_job("fetch_once", feed_server.url(path))
            assert job is not None
            result = await job.result(timeout=30)
            assert "error" not in result, result
    finally:
        await pool.aclose()
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        records = await stream_records(client, Keys(settings.namespace))
    finally:
        await client.aclose()
    assert len(records) == 3 + 4
    copies, others = records[:3], records[3:]
    assert len({r["feed_id"] for r in copies}) == 3
    assert (len({r["cluster_id"] for r in copies}) == 1) is copies_share
    assert copies[0]["cluster_id"] == copies[0]["id"]
    assert all(r["cluster_id"] == r["id"] for r in others)
    assert copies[0]["source"] == "Yonhap" and copies[0]["authors"] == ["Yonhap"]
