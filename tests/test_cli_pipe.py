"""A closed stdout is the reader going away (`ingest subscribe | head -1`), not an error.

Every command that prints exits quietly when its stdout is closed: status 141 (what a
shell reports for a tool ended by SIGPIPE, as `yes | head -1`), nothing on stderr but
what it printed before, no traceback. Real subprocesses, real pipes whose read end is
closed: before the first line (deterministic) and after reading one line (as `head -1`).
"""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio as aioredis

from ingest.cli.common import READER_GONE_STATUS
from ingest.keys import Keys
from ingest.settings import Settings
from tests.conftest import INGEST, env_for
from tests.feedserver import FeedServer
from tests.helpers import drain_sink, run_cli


async def run_with_closed_stdout(settings: Settings, *args: str) -> tuple[int, str]:
    """Run `ingest ARGS` with a stdout pipe nobody reads (its read end closed first)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = await asyncio.create_subprocess_exec(
            *INGEST, *args, env=env_for(settings), stdout=write_end, stderr=asyncio.subprocess.PIPE)
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.fixture
async def filled(settings: Settings, feed_server: FeedServer, worker: None) -> Settings:
    """Settings whose Redis and SQLite hold a feed, its 6 items and one dead letter."""
    url = feed_server.url("feeds/rss2-mediarss.xml")
    code, _, err = await run_cli(settings, "add", url)
    assert code == 0, err
    code, _, err = await run_cli(settings, "enqueue", "--wait", url)
    assert code == 0, err
    code, _, _ = await run_cli(settings, "enqueue", "--wait", feed_server.url("page.html"))
    assert code == 1  # not a feed: a dead letter to list
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await drain_sink(client, settings)
    finally:
        await client.aclose()
    return settings


COMMANDS = [
    ("items",),
    ("items", "--json"),
    ("search", "paragraph"),
    ("feeds",),
    ("feeds", "--json"),
    ("dead",),
    ("export",),
    ("subscribe", "--from", "0", "--no-follow"),
    ("subscribe", "--group", "readers", "--from", "0", "--no-follow"),
]


@pytest.mark.timeout(300)  # 21 `ingest` processes; slow on a loaded machine
async def test_a_closed_stdout_ends_every_printing_command_quietly(filled: Settings) -> None:
    wrong = {}
    for args in COMMANDS:
        code, out, err = await run_cli(filled, *args)
        assert code == 0 and out.strip(), (args, err)  # there is output to lose
        # a group of its own: the first run's group has acknowledged everything
        code, err = await run_with_closed_stdout(filled, *[a.replace("readers", "gone") for a in args])
        if code != READER_GONE_STATUS or any(w in err for w in ("error", "Traceback", "Exception")):
            wrong[" ".join(args)] = (code, err[-300:])
    assert wrong == {}


async def test_live_subscribe_piped_into_head_exits_quietly(settings: Settings) -> None:
    """`ingest subscribe | head -1`: one line read, then the reader is gone."""
    keys = Keys(settings.namespace)
    read_end, write_end = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *INGEST, "subscribe", env=env_for(settings), stdout=write_end, stderr=asyncio.subprocess.PIPE)
    finally:
        os.close(write_end)
    client = aioredis.Redis.from_url(settings.redis_url)
    reader = os.fdopen(read_end, "rb")
    try:
        assert proc.stderr is not None
        assert b"subscribed to" in await asyncio.wait_for(proc.stderr.readline(), 30)
        await client.publish(keys.items_channel, b'{"id": "first"}')
        line = await asyncio.wait_for(asyncio.to_thread(reader.readline), 10)
        assert line == b'{"id": "first"}\n'
        reader.close()  # head -1 has what it wanted
        for _ in range(50):  # bounded: the next line written finds the pipe closed
            await client.publish(keys.items_channel, b'{"id": "next"}')
            try:
                await asyncio.wait_for(proc.wait(), 0.2)
                break
            except TimeoutError:
                pass
        err = (await asyncio.wait_for(proc.stderr.read(), 10)).decode()
        assert proc.returncode == READER_GONE_STATUS, err
        assert err == "", err  # no "lost the connection to Redis: [Errno 32] Broken pipe"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if not reader.closed:
            reader.close()
        await client.aclose()


async def test_a_following_subscribe_notices_its_reader_left_without_more_traffic(settings: Settings) -> None:
    """`ingest subscribe --from 0 | head -1` on a quiet stream: it does not wait for the
    next item to find out (as `tail -f | head -1` would), it ends within seconds."""
    keys = Keys(settings.namespace)
    client = aioredis.Redis.from_url(settings.redis_url)
    await client.xadd(keys.items_stream, {"item": b'{"id": "only"}'})
    read_end, write_end = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *INGEST, "subscribe", "--from", "0", env=env_for(settings), stdout=write_end,
            stderr=asyncio.subprocess.PIPE)
    finally:
        os.close(write_end)
    reader = os.fdopen(read_end, "rb")
    try:
        assert await asyncio.wait_for(asyncio.to_thread(reader.readline), 30) == b'{"id": "only"}\n'
        reader.close()  # and nothing more is ever delivered
        _, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == READER_GONE_STATUS, err
        assert err.decode().startswith("replaying") and "error" not in err.decode(), err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if not reader.closed:
            reader.close()
        await client.aclose()


async def test_subscribe_started_with_stdout_closed_exits_quietly(settings: Settings) -> None:
    """`ingest subscribe >&-`: nobody can ever read it; it must not follow the stream
    forever, nor write items into whatever file descriptor 1 becomes."""
    keys = Keys(settings.namespace)
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await client.xadd(keys.items_stream, {"item": b'{"id": "only"}'})
    finally:
        await client.aclose()
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", 'exec "$@" >&-', "sh", *INGEST, "subscribe", "--from", "0",
        env=env_for(settings), stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == READER_GONE_STATUS, err
    assert b"Traceback" not in err and b"error" not in err, err
