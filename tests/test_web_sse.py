"""Live items over Server-Sent Events: delivery, resume by Last-Event-ID, keep-alive, trim overrun."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.settings import Settings
from ingest.web.sse import compare_ids, format_event
from tests.farm import Farm, sample_feed
from tests.helpers import feed_id_of
from tests.webserver import Api, api_server


@pytest.fixture
async def api(settings: Settings) -> Api:  # type: ignore[misc]
    async with api_server(settings) as served:
        yield served


class Events:
    """Reads one SSE response: events as dicts, comments counted; every read bounded in time."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0

    async def next(self, timeout: float = 20) -> dict[str, Any]:
        event: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for _ in range(10_000):
            line = (await asyncio.wait_for(self.response.content.readline(), deadline - loop.time())).decode()
            if line in ("\n", ""):
                if event:
                    return event
                if line == "":
                    raise EOFError("stream ended")
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.rstrip("\n").partition(": ")
            event[name] = value
        raise AssertionError("no event")

    async def items(self, count: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(count):
            event = await self.next()
            assert event["event"] == "item", event
            out.append(event)
        return out


async def _open(api: Api, path: str, last_id: str | None = None) -> tuple[aiohttp.ClientResponse, Events]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    response = await api.http.get(api.url(path), headers=api.headers(**headers))
    assert response.status == 200 and response.content_type == "text/event-stream"
    events = Events(response)
    first = await events.next()  # "retry:" arrives once the start position is fixed
    assert first.get("retry") == "1000"
    return response, events


def test_event_framing_and_id_order() -> None:
    assert format_event("item", b'{"a":1}', "5-1") == b'id: 5-1\nevent: item\ndata: {"a":1}\n\n'
    assert compare_ids("5-1", "5-0") == 1 and compare_ids("4-9", "5-0") == -1 and compare_ids("7", "7-0") == 0


@pytest.mark.usefixtures("worker")
async def test_live_items_then_resume_after_disconnect_without_loss_or_repeat(
        api: Api, farm: Farm, settings: Settings) -> None:
    farm.feeds["one.xml"] = sample_feed("one", items=3)
    farm.feeds["two.xml"] = sample_feed("two", items=3)
    response, events = await _open(api, "/api/v1/items/stream?heartbeat=1")
    status, body = await api.call("POST", "/api/v1/enqueue", {"urls": [farm.url("feed/one.xml")], "wait": True})
    assert status == 200 and body["results"][0]["new"] == 3
    [first] = await events.items(1)
    response.close()  # disconnect after one event; two of the batch are still unread
    status, body = await api.call("POST", "/api/v1/enqueue", {"urls": [farm.url("feed/two.xml")], "wait": True})
    assert body["results"][0]["new"] == 3
    response, events = await _open(api, "/api/v1/items/stream?heartbeat=1", last_id=first["id"])
    rest = await events.items(5)
    ids = [first["id"]] + [e["id"] for e in rest]
    client = aioredis.Redis.from_url(settings.redis_url)
    in_stream = [eid.decode() for eid, _ in await client.xrange(Keys(settings.namespace).items_stream)]
    await client.aclose()
    assert ids == in_stream  # every entry once, in order
    titles = [orjson.loads(e["data"])["title"] for e in [first, *rest]]
    assert sorted(titles) == sorted([f"one story {i}" for i in range(3)] + [f"two story {i}" for i in range(3)])
    # Idle: keep-alive comments, no events.
    for _ in range(50):
        if events.comments:
            break
        with pytest.raises(TimeoutError):
            await events.next(timeout=0.2)
    assert events.comments >= 1
    response.close()


@pytest.mark.usefixtures("worker")
async def test_filters_of_subscribe_apply(api: Api, farm: Farm) -> None:
    response, events = await _open(api, f"/api/v1/items/stream?feed={feed_id_of(farm.url('feed/b.xml'))}")
    for name in ("a", "b"):
        status, _ = await api.call("POST", "/api/v1/enqueue", {"urls": [farm.url(f"feed/{name}.xml")], "wait": True})
        assert status == 200
    got = await events.items(3)
    assert {orjson.loads(e["data"])["feed_id"] for e in got} == {feed_id_of(farm.url("feed/b.xml"))}
    response.close()


async def test_a_client_behind_the_trim_is_told(api: Api, settings: Settings) -> None:
    keys = Keys(settings.namespace)
    client = aioredis.Redis.from_url(settings.redis_url)
    ids = [(await client.xadd(keys.items_stream, {"item": orjson.dumps({"n": n})})).decode() for n in range(5)]
    await client.xtrim(keys.items_stream, maxlen=2, approximate=False)  # 0, 1, 2 are gone
    response, events = await _open(api, "/api/v1/items/stream", last_id=ids[0])
    overrun = await events.next()
    assert overrun["event"] == "overrun"
    info = orjson.loads(overrun["data"])
    assert info["last_event_id"] == ids[0] and info["resume_from"] == ids[3]
    assert [e["id"] for e in await events.items(2)] == ids[3:]
    response.close()
    # A position still in the stream is no overrun.
    response, events = await _open(api, "/api/v1/items/stream", last_id=ids[3])
    assert [e["id"] for e in await events.items(1)] == ids[4:]
    response.close()
    await client.aclose()
