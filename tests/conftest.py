"""Real parts only: a private redis-server per session, a loopback HTTP server,
an arq worker in the test's event loop, SQLite in a temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from ingest.daemon import make_worker
from ingest.embedded import RedisServer
from ingest.settings import Settings
from tests.farm import Farm
from tests.feedserver import FeedServer
from tests.sinkfixtures import postgres_url, sink, storage_url  # noqa: F401 - fixtures: SQLite and PostgreSQL sinks

# Test traffic stays on loopback: a proxy from the environment must not carry it elsewhere.
for _name in [n for n in os.environ if n.lower() in ("http_proxy", "https_proxy", "all_proxy")]:
    del os.environ[_name]

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "tests" / "data"  # every input the suite needs; the real corpus is tests/corpus.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server (the binary the embedded default ships) on a free port."""
    base = tmp_path_factory.mktemp("redis")
    server = RedisServer(directory=base, socket_path=base / "redis.sock", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The private server's URL, emptied before each test."""
    if not redis_server.running:  # a test killed it
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer(DATA_DIR)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of the session's private redis-server, closed after the test."""
    c = aioredis.Redis.from_url(settings.redis_url)
    yield c
    await c.aclose()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        namespace="t",
        redis_url=redis_url,
        data_dir=str(tmp_path / "data"),
        storage_url=f"sqlite:///{tmp_path / 'items.db'}",
        sink_block_ms=100,
        enqueue_wait_timeout=30.0,
        allow_networks="127.0.0.0/8",  # the loopback test servers, opened on purpose
        host_min_delay=0.0,
        # Test feeds link to real publishers' hosts: no article page is fetched unless a
        # test asks (tests/test_article_e2e.py), so no request leaves loopback (#15).
        full_text="off",
    )


def env_for(settings: Settings) -> dict[str, str]:
    """Environment that makes an `ingest` subprocess use `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(
        INGEST_NAMESPACE=settings.namespace,
        INGEST_REDIS_URL=settings.redis_url,
        INGEST_DATA_DIR=settings.data_dir,
        INGEST_STORAGE_URL=settings.storage_url,
        INGEST_LOG_LEVEL="WARNING",
        INGEST_ALLOW_NETWORKS=settings.allow_networks,
        INGEST_HOST_MIN_DELAY=str(settings.host_min_delay),
        INGEST_FULL_TEXT=settings.full_text,
        INGEST_FULL_TEXT_DEADLINE=str(settings.full_text_deadline),
        INGEST_LISTEN="",  # no HTTP server unless a test asks for one on a free port
    )
    return env


INGEST = [sys.executable, "-m", "ingest"]


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """An arq worker running in the current event loop until the block ends."""
    w = make_worker(settings, handle_signals=False)
    task = asyncio.create_task(w.async_run())
    try:
        yield
    finally:
        # arq's close() gathers the jobs it cancels: a job still running re-raises its
        # CancelledError there, which is the job's end, not this test's.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await w.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    """An arq worker running in the test's event loop."""
    async with running_worker(settings):
        yield


@pytest.fixture(scope="session")
def _farm() -> Iterator[Farm]:
    farm = Farm(DATA_DIR / "feeds")
    farm.start()
    yield farm
    farm.stop()


@pytest.fixture
def farm(_farm: Farm) -> Farm:
    """The loopback feed farm, with its log and custom feeds emptied for each test."""
    _farm.reset()
    return _farm
