"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis

from ingest.deliver.streamcodec import decode_item
from ingest.keys import Keys
from ingest.models import feed_id_for_url
from ingest.settings import Settings
from ingest.store.consume import SinkConsumer
from ingest.store.sqlite import SQLiteSink
from ingest.urls import canonical_url
from tests.conftest import INGEST, env_for


def feed_id_of(url: str) -> str:
    return feed_id_for_url(canonical_url(url) or url)


async def run_cli(settings: Settings, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *INGEST, *args, env=env_for(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def stream_records(client: aioredis.Redis, keys: Keys) -> list[dict[str, Any]]:
    return [orjson.loads(decode_item(fields[b"item"])) for _, fields in await client.xrange(keys.items_stream)]


async def drain_sink(client: aioredis.Redis, settings: Settings, consumer: str = "test") -> int:
    """Run the storage sink until the stream has nothing more for it; return items stored."""
    keys = Keys(settings.namespace)
    sink = SQLiteSink.from_url(settings.effective_storage_url)
    reader = SinkConsumer(client, keys, sink, group=keys.storage_group, consumer=consumer,
                          batch_size=50, block_ms=50, claim_idle_ms=60_000)
    await reader.ensure_group()
    total = 0
    for _ in range(1000):  # bounded
        stored = await reader.step(50)
        if stored == 0:
            break
        total += stored
    await sink.close()
    return total


def stored_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    path = Path(settings.effective_storage_url.removeprefix("sqlite://"))
    if not path.exists():
        return {}
    with sqlite3.connect(path) as conn:
        return {row[0]: orjson.loads(row[1]) for row in conn.execute("SELECT id, record FROM items")}


async def collect_messages(pubsub: aioredis.client.PubSub, want: int, timeout: float) -> list[bytes]:
    """Messages until `want` arrived or `timeout` passed (bounded in count and time)."""
    got: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < want and loop.time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message and message["type"] == "message":
            got.append(message["data"])
    return got


T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, pause: float = 0.05) -> T | None:
    """The first truthy value of `predicate()` within `timeout` seconds, else None (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(pause)
    return None


async def wait_until_async(predicate: Callable[[], T], timeout: float, pause: float = 0.05) -> T | None:
    """wait_until for a test whose event loop must keep running meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(pause)
    return None


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM a service started with start_new_session; its exit code, or None if it had
    to be killed (with its whole process group) after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None
