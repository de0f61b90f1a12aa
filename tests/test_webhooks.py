"""Webhooks against a real loopback aiohttp receiver: signed, retried, exactly once, dead-lettered."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from ingest.deliver.dead import list_dead, retry_dead
from ingest.deliver.webhooks import (
    SIGNATURE_HEADER,
    WebhookConsumer,
    WebhookSpec,
    backoff_seconds,
    is_retryable,
    load_webhooks,
    matches,
)
from ingest.errors import SettingsError
from ingest.keys import Keys
from ingest.settings import Settings
from tests.helpers import stop_process
from tests.records import fill_stream, record

SECRET = "s3cret"


class Receiver:
    """Answers `fail_first` 500s per item before accepting it; records what it accepted."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.attempts: dict[str, int] = {}
        self.accepted: list[str] = []
        self.bad_signatures = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected):
            self.bad_signatures += 1
            return web.Response(status=401)
        item = orjson.loads(body)
        key = f"{item['id']}:{item['version']}"
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if self.attempts[key] <= self.fail_first:
            return web.Response(status=500)
        self.accepted.append(key)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None and site._server.sockets
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()



async def _run_until(consumer: WebhookConsumer, stop: asyncio.Event, done, timeout: float) -> None:  # type: ignore[no-untyped-def]
    task = asyncio.create_task(consumer.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not done() and loop.time() < deadline:
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_failing_receiver_gets_every_item_exactly_once(settings: Settings, client: aioredis.Redis) -> None:
    keys = Keys(settings.namespace)
    receiver = Receiver(fail_first=2)
    await receiver.start()
    settings = dataclasses.replace(settings, webhook_retry_seconds=0.02, webhook_max_attempts=4)
    records = [record(i) for i in range(40)]
    await fill_stream(client, keys, records)
    stop = asyncio.Event()
    spec = WebhookSpec(name="hook", url=receiver.url, secret=SECRET, start="0")
    consumer = WebhookConsumer(client, keys, spec, settings, stop, consumer="w1")
    await _run_until(consumer, stop, lambda: len(receiver.accepted) >= 40, 30)
    await receiver.stop()
    assert sorted(receiver.accepted) == sorted(f"{r['id']}:1" for r in records)  # once each
    assert set(receiver.attempts.values()) == {3}  # two failures, then success
    assert receiver.bad_signatures == 0
    assert await client.xlen(keys.dead_stream) == 0
    assert (await client.xpending(keys.items_stream, "webhook:hook"))["pending"] == 0


async def test_filtered_webhook_gets_only_its_feeds_and_tags(settings: Settings, client: aioredis.Redis) -> None:
    keys = Keys(settings.namespace)
    receiver = Receiver(fail_first=0)
    await receiver.start()
    records = [record(0, feed="a"), record(1, feed="b"), record(2, feed="c", tags=["asia"]), record(3, feed="c")]
    await fill_stream(client, keys, records)
    stop = asyncio.Event()
    spec = WebhookSpec(name="some", url=receiver.url, secret=SECRET, feeds=("a",), tags=("asia",), start="0")
    consumer = WebhookConsumer(client, keys, spec, settings, stop, consumer="w1")
    await _run_until(consumer, stop,
                     lambda: consumer.loop.done >= 4, 10)
    await receiver.stop()
    assert sorted(receiver.accepted) == ["item00000:1", "item00002:1"]


@pytest.mark.parametrize("stream_record", ["json", "zstd"])
async def test_a_receiver_that_keeps_failing_gets_a_dead_letter_and_retry_sends_again(
    settings: Settings, client: aioredis.Redis, stream_record: str
) -> None:
    keys = Keys(settings.namespace)
    receiver = Receiver(fail_first=3)
    await receiver.start()
    settings = dataclasses.replace(settings, webhook_retry_seconds=0.02, webhook_max_attempts=2)
    await fill_stream(client, keys, [record(1), record(2)], stream_record)
    stop = asyncio.Event()
    spec = WebhookSpec(name="hook", url=receiver.url, secret=SECRET, start="0")
    consumer = WebhookConsumer(client, keys, spec, settings, stop, consumer="w1")
    await _run_until(consumer, stop, lambda: consumer.loop.dead >= 2, 10)
    dead = await list_dead(client, keys, 10)
    assert [(d.kind, d.fields["group"], d.fields["item_id"]) for d in dead] == [
        ("webhook", "webhook:hook", "item00001"), ("webhook", "webhook:hook", "item00002")]
    assert "HTTP 500" in dead[0].error
    assert [orjson.loads(d.fields["item"]) for d in dead] == [record(1), record(2)]  # the JSON, readable
    assert receiver.accepted == []

    # `ingest dead retry`: back onto this group's own retry stream; the third attempt is accepted.
    retried, skipped = await retry_dead(client, keys, arq=None, entries=dead)  # type: ignore[arg-type]
    assert (retried, skipped) == (2, [])
    assert await client.xlen(keys.dead_stream) == 0
    assert await client.xlen(keys.items_stream) == 2  # other consumers see nothing again
    receiver.fail_first = 2
    stop = asyncio.Event()
    consumer = WebhookConsumer(client, keys, spec, settings, stop, consumer="w2")
    await _run_until(consumer, stop, lambda: len(receiver.accepted) >= 2, 10)
    await receiver.stop()
    assert sorted(receiver.accepted) == ["item00001:1", "item00002:1"]


def test_pure_decisions() -> None:
    assert [is_retryable(s) for s in (200, 404, 408, 429, 500, 503)] == [False, False, True, True, True, True]
    assert [backoff_seconds(n, 1.0) for n in (1, 2, 3, 10)] == [1.0, 2.0, 4.0, 60.0]
    spec = WebhookSpec("n", "http://127.0.0.1/", "s", feeds=("f",), tags=("t",))
    assert matches(spec, {"feed_id": "f"}) and matches(spec, {"feed_id": "g", "tags": ["t"]})
    assert not matches(spec, {"feed_id": "g", "tags": ["u"]})
    assert matches(WebhookSpec("n", "http://127.0.0.1/", "s"), {})


def test_webhooks_file_errors_name_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hooks.toml"
    path.write_text('[[webhook]]\nname = "a"\nurl = "http://127.0.0.1:1/h"\nsecret_env = "HOOK_SECRET"\n'
                    'tags = ["asia"]\n')
    monkeypatch.setenv("HOOK_SECRET", "xyz")
    [spec] = load_webhooks(str(path))
    assert (spec.name, spec.secret, spec.tags, spec.start) == ("a", "xyz", ("asia",), "$")
    for body, why in [
        ('[[webhook]]\nname = "a"\nurl = "ftp://x"\nsecret = "s"\n', "'url'"),
        ('[[webhook]]\nname = "a"\nurl = "http://x"\n', "'secret'"),
        ('[[webhook]]\nname = "a"\nurl = "http://x"\nsecret = "s"\nfeed = ["x"]\n', "unknown key 'feed'"),
        ('[[webhook]]\nname = "a b"\nurl = "http://x"\nsecret = "s"\n', "'name'"),
        ("not toml [", "not valid TOML"),
    ]:
        path.write_text(body)
        with pytest.raises(SettingsError, match="webhooks_file") as e:
            load_webhooks(str(path))
        assert why in str(e.value)


async def test_ingest_run_delivers_the_configured_webhooks(
    settings: Settings, client: aioredis.Redis, tmp_path: Path
) -> None:
    import subprocess

    from tests.conftest import INGEST, env_for

    keys = Keys(settings.namespace)
    receiver = Receiver(fail_first=1)
    await receiver.start()
    hooks = tmp_path / "hooks.toml"
    hooks.write_text(f'[[webhook]]\nname = "all"\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
                     f'start = "0"\n\n[[webhook]]\nname = "asia"\nurl = "{receiver.url}"\n'
                     f'secret = "{SECRET}"\ntags = ["asia"]\nstart = "0"\n')
    records = [record(i, tags=["asia"] if i < 3 else []) for i in range(10)]
    await fill_stream(client, keys, records)
    env = {**env_for(settings), "INGEST_WEBHOOKS_FILE": str(hooks),
           "INGEST_WEBHOOK_RETRY_SECONDS": "0.05"}
    proc = subprocess.Popen([*INGEST, "run", "--no-workers"], env=env, start_new_session=True)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(receiver.accepted) < 13 and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        code = stop_process(proc, 20)
        await receiver.stop()
    assert code == 0
    # Both webhooks' groups: "all" got the 10 items, "asia" the 3 tagged ones, each once.
    expected = [f"{r['id']}:1" for r in records] + [f"{r['id']}:1" for r in records[:3]]
    assert sorted(receiver.accepted) == sorted(expected)
