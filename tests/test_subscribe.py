"""`ingest subscribe`: replay from 0 / from an id, durable groups, filters, live channels."""

from __future__ import annotations

import asyncio

import orjson
import redis.asyncio as aioredis

from ingest.deliver.subscribe import ItemFilter, consume_group, live_channels, replay
from ingest.keys import Keys
from ingest.settings import Settings
from tests.helpers import run_cli
from tests.records import fill_stream, record


def _lines(out: str) -> list[tuple[str, dict[str, object]]]:
    rows = []
    for line in out.splitlines():
        entry_id, _, raw = line.partition(" ")
        rows.append((entry_id, orjson.loads(raw)))
    return rows


async def test_replay_from_0_and_from_an_id_returns_exactly_the_expected_items(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    records = [record(i, feed="a" if i % 2 else "b", language="de" if i % 3 else "en")
               for i in range(30)]
    ids = [i.decode() for i in await fill_stream(client, keys, records)]

    code, out, err = await run_cli(settings, "subscribe", "--from", "0", "--no-follow", "--with-id")
    assert code == 0, err
    assert _lines(out) == list(zip(ids, records, strict=True))

    code, out, err = await run_cli(settings, "subscribe", "--from", ids[9], "--no-follow", "--with-id")
    assert code == 0, err
    assert _lines(out) == list(zip(ids[10:], records[10:], strict=True))  # strictly after the id

    code, out, err = await run_cli(settings, "subscribe", "--from", ids[9], "--no-follow",
                                   "--feed", "a", "--lang", "de")
    assert code == 0, err
    expected = [r for r in records[10:] if r["feed_id"] == "a" and r["language"] == "de"]
    assert [orjson.loads(line) for line in out.splitlines()] == expected and expected

    code, out, _ = await run_cli(settings, "subscribe", "--from", ids[-1], "--no-follow")
    assert (code, out) == (0, "")


async def test_replay_follows_the_stream_after_catching_up(settings: Settings, client: aioredis.Redis) -> None:
    keys = Keys(settings.namespace)
    await fill_stream(client, keys, [record(i) for i in range(3)])
    got: list[str] = []
    task = asyncio.create_task(replay(client, keys, "0", ItemFilter(), lambda eid, raw: got.append(
        orjson.loads(raw)["id"]), block_ms=50))
    try:
        for _ in range(100):
            if len(got) == 3:
                break
            await asyncio.sleep(0.02)
        await fill_stream(client, keys, [record(i) for i in range(3, 5)])
        for _ in range(100):
            if len(got) == 5:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
    assert got == [f"item{i:05d}" for i in range(5)]


async def test_replay_from_dollar_gets_only_new_items(settings: Settings, client: aioredis.Redis) -> None:
    keys = Keys(settings.namespace)
    await fill_stream(client, keys, [record(1)])
    got: list[str] = []
    task = asyncio.create_task(replay(client, keys, "$", ItemFilter(), lambda eid, raw: got.append(
        orjson.loads(raw)["id"]), block_ms=50))
    await asyncio.sleep(0.2)
    await fill_stream(client, keys, [record(2)])
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    assert got == ["item00002"]


async def test_group_consumers_share_items_and_a_dead_consumers_pending_are_claimed(
    settings: Settings, client: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    records = [record(i, tags=["asia"] if i % 2 else []) for i in range(40)]
    await fill_stream(client, keys, records)
    # A consumer that reads 10 entries and dies before acknowledging them.
    await client.xgroup_create(keys.items_stream, "readers", id="0")
    await client.xgroup_create(keys.retry_stream("readers"), "readers", id="0", mkstream=True)
    await client.xreadgroup("readers", "dead-one", {keys.items_stream: ">"}, count=10)
    await asyncio.sleep(0.3)  # longer than --claim-idle: the dead consumer's entries are stale

    code, out, err = await run_cli(settings, "subscribe", "--group", "readers", "--consumer", "alive",
                                   "--claim-idle", "0.2", "--no-follow", "--with-id")
    assert code == 0, err
    got = _lines(out)
    # Everything, once: the 30 unread entries and then the 10 claimed from the dead consumer.
    assert sorted(r["id"] for _, r in got) == sorted(r["id"] for r in records)
    assert (await client.xpending(keys.items_stream, "readers"))["pending"] == 0
    code, out, _ = await run_cli(settings, "subscribe", "--group", "readers", "--no-follow")
    assert (code, out) == (0, "")  # acknowledged: nothing again

    # A separate group gets every item again; a tag filter prints only those.
    printed: list[str] = []
    n = await consume_group(client, keys, "tagged", "me", ItemFilter(tags=("asia",)),
                            lambda eid, raw: printed.append(orjson.loads(raw)["id"]),
                            start="0", follow=False, block_ms=50)
    assert n == 40
    assert printed == [r["id"] for r in records if r["tags"]]


def test_live_mode_picks_the_narrowest_channel() -> None:
    keys = Keys("ns")
    assert live_channels(keys, ItemFilter()) == ["ns:items"]
    assert live_channels(keys, ItemFilter(feeds=("f1",))) == ["ns:items:feed:f1"]
    assert live_channels(keys, ItemFilter(tags=("asia",), langs=("en",))) == ["ns:items:tag:asia"]
    assert live_channels(keys, ItemFilter(feeds=("f1", "f2"))) == ["ns:items"]


def test_filters_match_language_prefixes_and_any_of_the_values() -> None:
    f = ItemFilter(feeds=("a", "b"), langs=("de",))
    assert f.matches({"feed_id": "a", "language": "de-AT"})
    assert f.matches({"feed_id": "b", "language": "DE"})
    assert not f.matches({"feed_id": "a", "language": "den"})
    assert not f.matches({"feed_id": "c", "language": "de"})
    assert not f.matches({"feed_id": "a", "language": None})
    assert ItemFilter(tags=("x",)).matches({"tags": ["y", "x"]})
    assert not ItemFilter(tags=("x",)).matches({})


async def test_events_channel_is_printed_as_published(settings: Settings, client: aioredis.Redis) -> None:
    from tests.conftest import INGEST, env_for

    keys = Keys(settings.namespace)
    proc = await asyncio.create_subprocess_exec(
        *INGEST, "subscribe", "--events", env=env_for(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert b"subscribed to t:events" in await asyncio.wait_for(proc.stderr.readline(), 30)
        event = b'{"event":"feed_disabled","feed_id":"f1"}'
        await client.publish(keys.events_channel, event)
        assert (await asyncio.wait_for(proc.stdout.readline(), 10)).rstrip() == event
    finally:
        proc.terminate()
        await proc.wait()


async def test_entries_trimmed_while_pending_are_let_go(settings: Settings, client: aioredis.Redis) -> None:
    keys = Keys(settings.namespace)
    ids = await fill_stream(client, keys, [record(i) for i in range(3)])
    printed: list[str] = []
    await client.xgroup_create(keys.items_stream, "g", id="0")
    await client.xgroup_create(keys.retry_stream("g"), "g", id="0", mkstream=True)
    await client.xreadgroup("g", "me", {keys.items_stream: ">"}, count=3)  # read, then crashed
    await client.xdel(keys.items_stream, ids[0])  # trimmed meanwhile
    await consume_group(client, keys, "g", "me", ItemFilter(),
                        lambda eid, raw: printed.append(orjson.loads(raw)["id"]),
                        follow=False, block_ms=50)
    assert printed == ["item00001", "item00002"]
    assert (await client.xpending(keys.items_stream, "g"))["pending"] == 0


async def test_a_lost_redis_is_one_clear_error(settings: Settings, redis_server) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import INGEST, env_for

    proc = await asyncio.create_subprocess_exec(
        *INGEST, "subscribe", "--from", "0", env=env_for(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        assert b"replaying" in await asyncio.wait_for(proc.stderr.readline(), 30)
        redis_server.kill()
        err = await asyncio.wait_for(proc.stderr.read(), 30)
        assert await proc.wait() == 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        redis_server.start()
    assert err.decode().startswith("error: lost the connection to Redis"), err
    assert b"Traceback" not in err


def test_only_idle_consumers_holding_nothing_are_pruned() -> None:
    from ingest.deliver.groups import PRUNE_IDLE_MS, should_prune

    assert should_prune("old", "me", 0, PRUNE_IDLE_MS)
    assert not should_prune("old", "me", 1, PRUNE_IDLE_MS)  # still owns entries
    assert not should_prune("old", "me", 0, PRUNE_IDLE_MS - 1)
    assert not should_prune("me", "me", 0, PRUNE_IDLE_MS)
