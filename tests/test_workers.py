"""`ingest run --workers 2` end to end: many feeds on the loopback farm, every item once.

The poller fetches in the daemon's event loop and two worker processes parse
(#9): every item of every feed must reach the stream exactly once and SQLite
exactly once, and the service must stop cleanly (workers last).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import orjson
import redis
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.poll.registry import add_feed
from ingest.settings import Settings
from tests.conftest import INGEST, env_for
from tests.farm import HOSTS, Farm, sample_feed
from tests.helpers import stop_process, stored_rows, stream_records, wait_until

FEEDS, ITEMS = 120, 6


async def _register(settings: Settings, urls: list[str]) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        for url in urls:
            await add_feed(client, Keys(settings.namespace), url, interval=3600)
    finally:
        await client.aclose()


def _count(settings: Settings) -> int:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return int(client.xlen(Keys(settings.namespace).items_stream))
    finally:
        client.close()


def _jobs_per_worker(settings: Settings) -> list[int]:
    """Jobs each live worker process has finished, from the heartbeats."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=Keys(settings.namespace).worker("*")))
        return sorted(int(orjson.loads(client.get(k) or b"{}").get("jobs", 0)) for k in keys)
    finally:
        client.close()


def test_run_with_two_worker_processes_delivers_every_item_of_many_feeds_once(
    settings: Settings, farm: Farm, tmp_path: Path
) -> None:
    urls = []
    for n in range(FEEDS):
        farm.feeds[f"mw{n}"] = sample_feed(f"mw{n}", items=ITEMS, text=f"Story text of feed {n}")
        urls.append(farm.url(f"feed/mw{n}", host=HOSTS[n % 3]))
    asyncio.run(_register(settings, urls))
    env = {**env_for(settings), "INGEST_LOG_LEVEL": "INFO", "INGEST_PER_HOST_CONCURRENCY": "20",
           "INGEST_SINK_BLOCK_MS": "100"}
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*INGEST, "run", "--workers", "2"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    total = FEEDS * ITEMS
    try:
        assert wait_until(lambda: _count(settings) >= total, 120), log.read_text()[-3000:]
        assert wait_until(lambda: len(stored_rows(settings)) >= total, 60), log.read_text()[-3000:]
        # Both processes took part (heartbeats carry the count of finished jobs).
        per_worker = wait_until(lambda: (lambda j: j if sum(j) >= FEEDS else None)(
            _jobs_per_worker(settings)), 10)
    finally:
        code = stop_process(proc, 40)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "2 worker processes" in output

    async def records() -> list[dict[str, object]]:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            return await stream_records(client, Keys(settings.namespace))
        finally:
            await client.aclose()

    on_stream = asyncio.run(records())
    expected = sorted(f"mw{n}-{i}" for n in range(FEEDS) for i in range(ITEMS))
    assert sorted(str(r["guid"]) for r in on_stream) == expected  # each once, none lost
    rows = stored_rows(settings)
    assert sorted(str(r["guid"]) for r in rows.values()) == expected
    assert {r["id"] for r in on_stream} == set(rows)
    assert len(farm.hits("/feed/mw")) == FEEDS  # each feed fetched once
    assert per_worker is not None and len(per_worker) == 2 and min(per_worker) > 0, per_worker
