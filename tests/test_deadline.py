"""Parse deadlines on real worker processes (#12 item 4).

A hostile document (one element with tens of thousands of attributes:
feedparser's attribute handling is quadratic, ~99 s for 80,000 and minutes
for more) is stopped at `parse_deadline` and dead-lettered, and a normal feed
enqueued beside it on the same worker process is delivered without waiting
for it beyond the deadline. A worker that stops heartbeating altogether
(SIGSTOP: nothing inside it can act) is killed by `ingest run`'s supervisor,
restarted, and its job runs again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.redis_conn import connect_arq
from ingest.settings import Settings
from tests.conftest import INGEST, env_for
from tests.feedserver import FeedServer
from tests.helpers import stop_process, stream_records
from tests.test_delivery import _feed

DEADLINE = 2.0


def hostile_feed(attributes: int) -> bytes:
    """RSS whose one item carries `attributes` attributes (quadratic in feedparser)."""
    attrs = " ".join(f'a{i}="v"' for i in range(attributes))
    return (f'<rss version="2.0"><channel><title>Hostile</title><item {attrs}><title>x</title>'
            f"<guid>hostile-1</guid></item></channel></rss>").encode()



def _start(settings: Settings, log: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    full = {**env_for(settings), "INGEST_LOG_LEVEL": "INFO",
            "INGEST_PARSE_DEADLINE": str(DEADLINE), **env}
    with log.open("ab") as out:
        return subprocess.Popen([*INGEST, *args], env=full, stdout=out, stderr=out,
                                start_new_session=True)


async def _worker_pids(client: aioredis.Redis, keys: Keys, want: int, timeout: float) -> dict[str, int]:
    """Worker id -> pid from the heartbeat keys, once `want` workers are alive (bounded)."""
    deadline = time.monotonic() + timeout
    found: dict[str, int] = {}
    while time.monotonic() < deadline:
        found = {}
        async for key in client.scan_iter(match=keys.worker("*")):
            raw = await client.get(key)
            if raw:
                found[key.decode().rsplit(":", 1)[1]] = int(json.loads(raw)["pid"])
        if len(found) >= want:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{want} workers never heartbeated; saw {found}")


async def test_a_hostile_document_is_stopped_at_its_deadline_and_the_feed_beside_it_is_not_held(
    settings: Settings, feed_server: FeedServer, client: aioredis.Redis, tmp_path: Path
) -> None:
    keys = Keys(settings.namespace)
    # 60,000 attributes: minutes of feedparser without a deadline (20,000 take ~30 s here).
    hostile = feed_server.serve("hostile.xml", hostile_feed(60_000))
    normal = feed_server.serve("beside.xml", _feed(10, "n"))
    log = tmp_path / "worker.log"
    proc = _start(settings, log, "worker")
    pool = await connect_arq(settings)
    try:
        [pid] = (await _worker_pids(client, keys, 1, 60)).values()
        assert pid == proc.pid  # one worker process runs both jobs
        bad = await pool.enqueue_job("fetch_once", hostile)
        assert bad is not None
        started = time.monotonic()
        for _ in range(600):  # bounded: until the hostile body is served (its parse begins)
            if feed_server.hits.get("/custom/hostile.xml"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        good = await pool.enqueue_job("fetch_once", normal)  # while the hostile parse runs
        good_enqueued = time.monotonic()
        assert good is not None
        good_result = await good.result(timeout=60, poll_delay=0.05)
        good_after = time.monotonic() - good_enqueued
        bad_result = await bad.result(timeout=60, poll_delay=0.05)
        bad_after = time.monotonic() - started
    finally:
        await pool.aclose()
        code = stop_process(proc, 30)
    output = log.read_text()
    assert good_result["new"] == 10, output[-3000:]
    assert bad_result["stage"] == "parse" and "parse deadline exceeded" in bad_result["error"]
    # The hostile parse ran to its deadline and no further; the normal feed did not wait
    # for it beyond the deadline (loose bounds: the machine is shared; unbounded, the
    # hostile parse alone takes minutes).
    assert DEADLINE <= bad_after < 30, output[-3000:]
    assert good_after < DEADLINE + 20, output[-3000:]
    records = await stream_records(client, keys)
    assert sorted(r["guid"] for r in records) == sorted(f"n{i}" for i in range(10))
    dead = await client.xrange(keys.dead_stream)
    assert [f[b"kind"] for _, f in dead] == [b"parse"]
    assert b"parse deadline exceeded" in dead[0][1][b"error"] and dead[0][1][b"url"] == hostile.encode()
    stats = await client.hgetall(keys.stats)
    assert stats[b"parse_deadline_exceeded"] == b"1"
    assert code == 0, output[-3000:]  # the same process carried on and stopped cleanly
    print(f"\nhostile document stopped after {bad_after:.1f} s (deadline {DEADLINE:g} s); "
          f"the feed beside it delivered after {good_after:.1f} s")


async def test_a_worker_that_stops_heartbeating_is_killed_restarted_and_its_job_runs_again(
    settings: Settings, feed_server: FeedServer, client: aioredis.Redis, tmp_path: Path
) -> None:
    keys = Keys(settings.namespace)
    url = feed_server.serve("stuck.xml", _feed(12, "st"), delays=[3])  # in the job for 3 s
    log = tmp_path / "service.log"
    proc = _start(settings, log, "run", "--workers", "1", INGEST_PARSE_DEADLINE="1",
                  INGEST_WORKER_STALL_GRACE="1", INGEST_WORKER_HEARTBEAT_TTL="1.5")
    pool = await connect_arq(settings)
    try:
        [(worker_id, pid)] = (await _worker_pids(client, keys, 1, 60)).items()
        job = await pool.enqueue_job("fetch_once", url)
        assert job is not None
        for _ in range(600):  # bounded: until the worker is inside the job, fetching
            if feed_server.hits.get("/custom/stuck.xml"):
                break
            await asyncio.sleep(0.05)
        os.kill(pid, signal.SIGSTOP)  # frozen: no deadline, no heartbeat thread can act
        stopped_at = time.monotonic()
        result = await job.result(timeout=60, poll_delay=0.1)
        recovered = time.monotonic() - stopped_at
        info = await job.info()
    finally:
        await pool.aclose()
        code = stop_process(proc, 30)
    output = log.read_text()
    assert result["new"] == 12, output[-3000:]
    assert info is not None and info.job_try == 2
    assert "stopped heartbeating" in output and f"{worker_id}" in output
    records = await stream_records(client, keys)
    assert len(records) == 12 and len({r["id"] for r in records}) == 12
    stats = await client.hgetall(keys.stats)
    assert stats[b"worker_restarts"] == b"1" and int(stats[b"jobs_reaped"]) >= 1
    assert recovered < 30, output[-3000:]
    assert code == 0, output[-3000:]
    print(f"\nfrozen worker killed and its job delivered {recovered:.1f} s after SIGSTOP")


STUCK = """
import asyncio, sys, time
import redis.asyncio as aioredis
from ingest.settings import Settings
from workers.liveness import WorkerLiveness

async def main() -> None:
    settings = Settings(redis_url=sys.argv[1], namespace="t", parse_deadline=0.5,
                        worker_stall_grace=0.5, worker_heartbeat_ttl=1)
    client = aioredis.Redis.from_url(settings.redis_url)
    WorkerLiveness(settings, "stuck", None, exit_on_stall=True).start(client)
    await asyncio.sleep(0.5)
    print("blocking", flush=True)
    time.sleep(60)  # the loop stalls outside any deadline section: no alarm can help
    print("not reached", flush=True)

asyncio.run(main())
"""


def test_a_worker_whose_event_loop_stalls_past_deadline_and_grace_exits_by_itself(
    settings: Settings,
) -> None:
    import sys

    from workers.liveness import STALL_EXIT_CODE

    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK, settings.redis_url], capture_output=True,
                          text=True, timeout=60)
    took = time.monotonic() - began
    assert done.returncode == STALL_EXIT_CODE, done.stderr[-2000:]
    assert "blocking" in done.stdout and "not reached" not in done.stdout
    assert "event loop stuck" in done.stderr
    assert took < 30  # far sooner than the 60 s block (limit 1 s + a heartbeat period)


async def test_an_ended_section_is_a_sign_of_life_for_the_stall_check(
    settings: Settings, client: aioredis.Redis
) -> None:
    """Sections of several documents or article pages can run back to back in one turn of
    the event loop, before the loop's tick comes round (#15): each that ended, stopped at
    its deadline or not, proves the interpreter alive."""
    from workers import deadline
    from workers.liveness import WorkerLiveness

    seen: list[int] = []
    stop = deadline.on_section_end(lambda: seen.append(1))
    try:
        deadline.bounded(sum, [1, 2])
        with pytest.raises(ValueError), deadline.section():
            raise ValueError("a section that fails has ended too")
    finally:
        stop()
    deadline.bounded(sum, [1])  # no longer listened to
    assert seen == [1, 1]

    liveness = WorkerLiveness(settings, "w-section", None, exit_on_stall=False)
    liveness.start(client)
    try:
        liveness._last_tick -= 100  # as if the loop had not ticked for 100 s
        deadline.bounded(sum, [1])
        assert time.monotonic() - liveness._last_tick < 5
    finally:
        await liveness.stop(client)
    liveness._last_tick -= 100
    deadline.bounded(sum, [1])  # a stopped liveness no longer listens
    assert time.monotonic() - liveness._last_tick > 50
