"""Our asyncio Redis connections pack commands with hiredis (ingest/redis_conn.py): the
bytes on the wire must be exactly what redis-py's own packing sends."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from arq.connections import create_pool
from redis.exceptions import DataError, ResponseError

import ingest.redis_conn as redis_conn
from ingest.redis_conn import (
    _UnixConnection,
    arq_redis_settings,
    connect,
    connection_class_for,
    pack_with_hiredis,
    raw_replies,
    run_scripts,
)
from ingest.settings import Settings

CASES: list[tuple[Any, ...]] = [
    ("SET", "k", "v"),
    ("SCRIPT LOAD", "return 1"),  # a command name with a space is split, as redis-py does
    (b"CLIENT SETNAME", b"x"),
    ("ZADD", "z", 1.5, "m", 0.1, "n", 1e20, "o", -0.0, "p", 3.141592653589793, "q"),
    ("SET", "ü", "日本語"),
    ("SET", b"\x00\xff", memoryview(b"abc")),
    ("INCRBY", "k", -5),
    ("SET", "big", 10**20),
    ("EVALSHA", "abc", 700, *(f"key:{i}" for i in range(700))),
    ("SET", "large", "x" * 100_000),
]


@pytest.mark.parametrize("command", CASES, ids=lambda c: str(c[0]))
def test_hiredis_packing_sends_the_bytes_redis_py_sends(command: tuple[Any, ...]) -> None:
    ours = _UnixConnection(path="/nonexistent.sock")
    theirs = aioredis.UnixDomainSocketConnection(path="/nonexistent.sock")
    assert b"".join(ours.pack_command(*command)) == b"".join(bytes(c) for c in theirs.pack_command(*command))


def test_a_value_redis_cannot_take_is_a_data_error_as_before() -> None:
    with pytest.raises(DataError):
        _UnixConnection(path="/nonexistent.sock").pack_command("SET", "k", None)


def test_the_connection_class_follows_the_url_scheme() -> None:
    assert issubclass(connection_class_for("unix:///tmp/r.sock"), aioredis.UnixDomainSocketConnection)
    assert issubclass(connection_class_for("rediss://h:6380/0"), aioredis.SSLConnection)
    assert connection_class_for("redis://127.0.0.1:6379/0").__name__ == "_Connection"


async def test_connect_round_trips_commands_through_the_hiredis_packing(settings: Settings) -> None:
    client = await connect(settings)
    try:
        assert client.connection_pool.connection_class is connection_class_for(settings.effective_redis_url)
        await client.hset("ns:test:packing", mapping={"ü": "日本語", "n": 5})
        assert await client.hgetall("ns:test:packing") == {"ü".encode(): "日本語".encode(), b"n": b"5"}
        assert await client.eval("return #KEYS", 300, *(f"k{i}" for i in range(300))) == 300
    finally:
        await client.aclose()


async def test_an_arq_pool_packs_with_hiredis_once_told(settings: Settings) -> None:
    pool = await create_pool(arq_redis_settings(settings))  # arq picks redis-py's class
    try:
        assert pool.connection_pool.connection_class is not connection_class_for(settings.effective_queue_url)
        await pack_with_hiredis(pool)
        assert pool.connection_pool.connection_class is connection_class_for(settings.effective_queue_url)
        await pool.hset("ns:test:arqpacking", mapping={"ü": "日本語", "n": 5})
        assert await pool.hgetall("ns:test:arqpacking") == {"ü".encode(): "日本語".encode(), b"n": b"5"}
        assert await pool.enqueue_job("f", 1, "two") is not None  # arq's own pipelines
    finally:
        await pool.aclose()


async def test_run_scripts_runs_each_call_once_in_one_pipeline(settings: Settings) -> None:
    """No SCRIPT EXISTS before the pipeline (redis-py's pipelines ask it every time), and
    after a SCRIPT FLUSH only the calls answered NOSCRIPT run again: none twice."""
    client = await connect(settings)
    incr = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
    echo = "return ARGV[1]"
    calls = [(incr, ["ns:test:scripts"], [2]), (echo, ["ns:test:x"], ["x"]), (incr, ["ns:test:scripts"], [3])]
    try:
        await client.delete("ns:test:scripts")
        await client.script_flush()
        before = (await client.info("commandstats")).get("cmdstat_script|exists", {}).get("calls", 0)
        assert await run_scripts(client, calls) == [2, b"x", 5]
        assert await run_scripts(client, calls) == [7, b"x", 10]
        assert await run_scripts(client, []) == []
        after = (await client.info("commandstats")).get("cmdstat_script|exists", {}).get("calls", 0)
        assert after == before
        with pytest.raises(redis.exceptions.ResponseError):
            await run_scripts(client, [("return redis.call('NOSUCHCOMMAND')", ["ns:test:x"], [])])
    finally:
        await client.aclose()


async def test_raw_replies_are_the_pipeline_replies_unconverted(settings: Settings) -> None:
    client = await connect(settings)
    try:
        await client.delete("ns:test:raw")
        replies = await raw_replies(client, [("HSET", "ns:test:raw", "lease", "t1"), ("HGETALL", "ns:test:raw"),
                                             ("HSET", "ns:test:raw", "n", 5), ("HGETALL", "ns:test:raw")])
        assert replies == [1, [b"lease", b"t1"], 1, [b"lease", b"t1", b"n", b"5"]]
        async with client.pipeline(transaction=False) as pipe:
            pipe.hgetall("ns:test:raw")
            (as_dict,) = await pipe.execute()
        assert as_dict == dict(zip(replies[3][::2], replies[3][1::2], strict=True))
    finally:
        await client.aclose()


async def test_an_error_reply_raises_and_leaves_no_reply_behind(settings: Settings) -> None:
    client = await connect(settings)
    try:
        await client.set("ns:test:str", "x")
        with pytest.raises(ResponseError):
            # The error comes first; the replies after it must not reach the next caller.
            await raw_replies(client, [("HGETALL", "ns:test:str"), ("GET", "ns:test:str"), ("PING",)])
        assert await raw_replies(client, [("GET", "ns:test:str")]) == [b"x"]
        assert await client.get("ns:test:str") == b"x"
        with pytest.raises(DataError):
            await raw_replies(client, [("SET", "k", None)])
        assert await client.ping()
    finally:
        await client.aclose()


async def test_a_command_failing_inside_exec_raises(settings: Settings) -> None:
    """A queued command's runtime error comes back inside EXEC's array: raised all the
    same (a parse job's enqueue must not pass for done when its ZADD failed)."""
    client = await connect(settings)
    try:
        await client.delete("ns:test:job")
        await client.set("ns:test:notzset", "x")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await raw_replies(client, [("MULTI",), ("SET", "ns:test:job", "1"),
                                       ("ZADD", "ns:test:notzset", 1, "job"), ("EXEC",)])
        assert await client.get("ns:test:job") == b"1"  # Redis does not roll back the rest
        assert await raw_replies(client, [("GET", "ns:test:job")]) == [b"1"]
    finally:
        await client.aclose()


async def test_replies_read_from_the_hiredis_reader_are_read_responses_replies(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct read (decision 158) against read_response, on replies larger than one
    socket read and more than one read's worth of them, errors included."""
    client = await connect(settings)
    try:
        big = "x" * 300_000
        await client.delete("ns:test:big")
        await client.hset("ns:test:big", mapping={f"f{i}": big[: 1000 * i] for i in range(60)})
        commands: list[tuple[Any, ...]] = [("HGETALL", "ns:test:big"), ("PING",), ("GET", "ns:test:none"),
                                           *[("HGET", "ns:test:big", f"f{i}") for i in range(60)]]
        conn = await client.connection_pool.get_connection()
        assert redis_conn._reads_direct(conn)  # noqa: SLF001 - the daemon's client takes the direct read
        await client.connection_pool.release(conn)
        direct = await raw_replies(client, commands)
        monkeypatch.setattr(redis_conn, "_reads_direct", lambda conn: False)
        assert await raw_replies(client, commands) == direct
        monkeypatch.undo()
        assert direct[1] == b"PONG" and direct[2] is None and direct[3] == b""
        assert direct[-1] == big[:59_000].encode()
        await client.set("ns:test:str", "x")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await raw_replies(client, [("PING",), ("HGETALL", "ns:test:str"), ("GET", "ns:test:str")])
        assert await raw_replies(client, [("GET", "ns:test:str")]) == [b"x"]
    finally:
        await client.aclose()


async def test_a_client_with_a_socket_timeout_reads_through_read_response(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        conn = await client.connection_pool.get_connection()
        assert not redis_conn._reads_direct(conn)  # noqa: SLF001
        await client.connection_pool.release(conn)
        assert await raw_replies(client, [("PING",), ("ECHO", "a")]) == [b"PONG", b"a"]
    finally:
        await client.aclose()
