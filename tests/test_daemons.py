"""Several daemon processes against one Redis: no feed fetched twice in one interval,
and a killed daemon's feeds are picked up by another once their lease runs out."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from ingest.keys import Keys
from ingest.poll.registry import add_feed
from ingest.settings import Settings
from tests.conftest import INGEST, env_for
from tests.farm import HOSTS, Farm
from tests.helpers import stop_process, wait_until


def _daemon(settings: Settings, tmp: Path, name: str, **extra: str) -> subprocess.Popen[bytes]:
    env = env_for(settings)
    env.update(INGEST_USER_AGENT=f"ingest-test {name}", INGEST_DATA_DIR=str(tmp / name),
               INGEST_LOG_LEVEL="INFO", **extra)
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen([*INGEST, "run", "--no-workers"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _register(settings: Settings, urls: list[str]) -> None:
    import asyncio

    import redis.asyncio as aioredis

    async def go() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        for url in urls:
            await add_feed(client, Keys(settings.namespace), url, interval=600)
        await client.aclose()

    asyncio.run(go())


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:  # all at once, then wait for each
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        stop_process(proc, 20)


def test_two_daemons_never_fetch_a_feed_twice(settings: Settings, farm: Farm, tmp_path: Path) -> None:
    urls = [farm.url(f"slow/0.5/two{i}.xml", host=HOSTS[i % 3]) for i in range(24)]
    _register(settings, urls)
    extra = {"INGEST_POLL_BATCH": "2", "INGEST_MIN_INTERVAL": "1"}
    a = _daemon(settings, tmp_path, "A", **extra)
    b = _daemon(settings, tmp_path, "B", **extra)
    try:
        assert wait_until(lambda: len({h.path for h in farm.hits("/slow/0.5/two")}) == 24, 60), \
            (tmp_path / "A.log").read_text()[-2000:]
        time.sleep(2)  # a second fetch, if any, would show up now
    finally:
        _stop(a, b)
    hits = farm.hits("/slow/0.5/two")
    assert sorted(h.path for h in hits) == sorted(f"/slow/0.5/two{i}.xml" for i in range(24))
    agents = {h.user_agent for h in hits}
    assert agents == {"ingest-test A", "ingest-test B"}, agents  # both took part


def test_a_killed_daemons_feeds_are_taken_over_after_the_lease(
    settings: Settings, farm: Farm, tmp_path: Path
) -> None:
    keys = Keys(settings.namespace)
    urls = [farm.url(f"uaslow/ingest-test A/60/k{i}.xml", host=HOSTS[i % 3]) for i in range(4)]
    _register(settings, urls)
    client = redis.Redis.from_url(settings.redis_url)
    lease = 3
    a = _daemon(settings, tmp_path, "A", INGEST_LEASE_SECONDS=str(lease))
    try:
        ids = [m.decode() for m in client.smembers(keys.feeds)]
        assert wait_until(lambda: all(client.hget(keys.feed(i), "lease") for i in ids), 30)
        claimed_at = time.time()
        os.killpg(a.pid, signal.SIGKILL)  # mid-fetch: every request of A is hanging
        a.wait(10)
        b = _daemon(settings, tmp_path, "B", INGEST_LEASE_SECONDS=str(lease))
        try:
            done = lambda: len([h for h in farm.hits("/uaslow/") if h.user_agent == "ingest-test B"]) >= 4  # noqa: E731
            assert wait_until(done, 40), (tmp_path / "B.log").read_text()[-2000:]
        finally:
            _stop(b)
    finally:
        _stop(a)
    taken = [h for h in farm.hits("/uaslow/") if h.user_agent == "ingest-test B"]
    assert sorted(h.path for h in taken) == sorted(f"/uaslow/ingest-test A/60/k{i}.xml" for i in range(4))
    assert all(h.status == 200 for h in taken)
    for i in ids:
        assert client.hget(keys.feed(i), "last_status") == b"200"
    # B waited for the lease: not one fetch before it ran out.
    first = min(h.start for h in taken)
    assert time.time() - (time.monotonic() - first) >= claimed_at + lease - 1.0
    client.close()


# --- A daemon started before its Redis (compose brings both up at once) waits for it. ---


def _log_says(path: Path, text: str) -> bool:
    return text in path.read_text(errors="replace")


def test_a_daemon_started_before_its_redis_waits_for_it_and_then_runs(
    settings: Settings, tmp_path: Path
) -> None:
    from ingest.embedded import RedisServer
    from tests.conftest import free_port

    port = free_port()
    absent = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{port}/0")
    proc = _daemon(absent, tmp_path, "early")
    log = tmp_path / "early.log"
    server = RedisServer(directory=tmp_path / "redis", socket_path=tmp_path / "redis.sock", port=port)
    try:
        assert wait_until(lambda: _log_says(log, "waiting for Redis"), 30), log.read_text()
        assert proc.poll() is None, log.read_text()  # still there, not exit 1
        text = log.read_text()
        assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in text
        assert "retrying in 0.5 s" in text
        (tmp_path / "redis").mkdir()
        server.start()
        assert wait_until(lambda: _log_says(log, "service ready"), 30), log.read_text()
    finally:
        code = stop_process(proc, 30)
        server.stop()
    assert code == 0, log.read_text()


def test_a_daemon_waiting_for_redis_stops_at_once_on_sigterm(settings: Settings, tmp_path: Path) -> None:
    from tests.conftest import free_port

    absent = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    proc = _daemon(absent, tmp_path, "never")
    log = tmp_path / "never.log"
    assert wait_until(lambda: _log_says(log, "waiting for Redis"), 30), log.read_text()
    started = time.monotonic()
    code = stop_process(proc, 30)
    assert code == 0, log.read_text()
    assert time.monotonic() - started < 5  # the backoff's sleep is cut short by the signal
    assert "service ready" not in log.read_text()


def test_the_retry_delay_doubles_up_to_ten_seconds() -> None:
    from ingest.daemon import FIRST_RETRY, MAX_RETRY, next_retry

    delays = [FIRST_RETRY]
    for _ in range(8):
        delays.append(next_retry(delays[-1]))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert MAX_RETRY == 10.0
