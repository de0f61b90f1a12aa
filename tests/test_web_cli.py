"""CLI parity: `ingest poll FEED|--all`, `ingest status`; and the default text log format."""

from __future__ import annotations

import orjson
import pytest
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.settings import Settings
from tests.farm import Farm
from tests.helpers import feed_id_of, run_cli


async def test_poll_makes_feeds_due_now_and_refuses_a_disabled_one(settings: Settings, farm: Farm) -> None:
    keys = Keys(settings.namespace)
    urls = [farm.url("feed/a.xml"), farm.url("feed/b.xml")]
    for url in urls:
        code, _, err = await run_cli(settings, "add", url, "--interval", "3600")
        assert code == 0, err
    client = aioredis.Redis.from_url(settings.redis_url)
    before = await client.zscore(keys.schedule, feed_id_of(urls[0]))
    code, out, err = await run_cli(settings, "poll", urls[0])
    assert code == 0, err
    assert out.strip() == f"due now: {feed_id_of(urls[0])}"
    assert await client.zscore(keys.schedule, feed_id_of(urls[0])) < before
    code, out, _ = await run_cli(settings, "poll", "--all")
    assert out.strip() == "2 feeds due now"
    await client.hset(keys.feed(feed_id_of(urls[1])), "lease", "someone-else")
    code, _, err = await run_cli(settings, "poll", feed_id_of(urls[1]))
    assert code == 1 and "being fetched right now" in err
    code, _, err = await run_cli(settings, "poll")
    assert code == 2 and "--all" in err
    code, _, err = await run_cli(settings, "poll", "http://nowhere.example/feed")
    assert code == 1 and "no feed" in err
    await client.aclose()


async def test_status_shows_the_page_content_in_the_terminal(settings: Settings, farm: Farm) -> None:
    code, _, err = await run_cli(settings, "add", "--force", farm.url("status/500"))
    assert code == 0, err
    code, out, err = await run_cli(settings, "status")
    assert code == 0, err
    assert "feeds:        1 new, 0 ok, 0 failing, 0 disabled" in out
    assert "queue depth:" in out and "items/hour:   0" in out


def test_json_logs_name_the_feed_in_its_context_and_text_is_the_default(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    import contextvars
    import dataclasses
    import logging

    from ingest.logs import configure_logging, feed_context

    assert Settings().log_format == "text"
    configure_logging(dataclasses.replace(settings, log_format="json"))
    log = logging.getLogger("ingest.test")

    def about_a_feed() -> None:
        feed_context("f1", "http://example.org/feed")
        log.warning("fetching")

    contextvars.copy_context().run(about_a_feed)
    log.warning("not about a feed")
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["feed_id"] == "f1" and lines[0]["feed_url"] == "http://example.org/feed"
    assert lines[0]["message"] == "fetching" and "feed_id" not in lines[1]
    configure_logging(settings)


def test_ingest_api_serves_alone_and_stops_on_sigterm(settings: Settings) -> None:
    import subprocess
    import urllib.request

    from tests.conftest import INGEST, env_for, free_port
    from tests.helpers import stop_process, wait_until

    port = free_port()
    env = env_for(settings) | {"INGEST_LISTEN": f"127.0.0.1:{port}", "INGEST_API_TOKEN": "t0ken"}
    proc = subprocess.Popen([*INGEST, "api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)

    def stats_status() -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/stats",
                                     headers={"Authorization": "Bearer t0ken"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
                return int(r.status)
        except OSError:
            return 0

    try:
        assert wait_until(lambda: stats_status() == 200, 30)
    finally:
        code = stop_process(proc, 20)
    assert code == 0
    assert proc.stderr is not None and f"serving http://127.0.0.1:{port}/" in proc.stderr.read().decode()
