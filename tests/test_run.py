"""`ingest run` with no configuration: embedded Redis, workers and sink in one process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import orjson
import redis

from tests.conftest import INGEST
from tests.feedserver import FeedServer
from tests.helpers import stop_process, wait_until

T = TypeVar("T")


def _bare_env(home: Path) -> dict[str, str]:
    """No Redis, storage or data settings: only a HOME, so the default data directory lands under it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "XDG_"))}
    env["HOME"] = str(home)
    env["INGEST_ALLOW_NETWORKS"] = "127.0.0.0/8"  # the loopback feed server, opened on purpose
    env["INGEST_LISTEN"] = ""  # no HTTP server on the default port 8080
    env["INGEST_FULL_TEXT"] = "off"  # test feeds link to real publishers: no article pages (#15)
    return env


def _wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    value = wait_until(predicate, timeout)
    assert value, f"timed out waiting for {what}"
    return value


def _ping(sock: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def _start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*INGEST, "run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_run_without_configuration_embeds_redis_and_stops_cleanly(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    env = _bare_env(tmp_path)
    data = tmp_path / ".local" / "share" / "ingest"
    sock = data / "redis.sock"
    proc = _start(env)
    try:
        _wait_for(lambda: _ping(sock), 30, "the embedded Redis")
        client = redis.Redis(unix_socket_path=str(sock))
        redis_pid = int(client.info("server")["process_id"])
        assert redis_pid != proc.pid

        # The whole path against the embedded server, driven by the CLI.
        url = feed_server.url("data/seed-yonhap.xml")
        enq = subprocess.run([*INGEST, "enqueue", "--wait", url], env=env,
                             capture_output=True, text=True, timeout=60)
        assert enq.returncode == 0, enq.stderr
        assert "1 new" in enq.stdout

        def stored() -> list[dict[str, object]]:
            out = subprocess.run([*INGEST, "items", "--json"], env=env, capture_output=True,
                                 text=True, timeout=60)
            return [orjson.loads(line) for line in out.stdout.splitlines()]

        [record] = _wait_for(stored, 30, "the sink to store the item")
        assert record["title"] == "S. Korea, China hold working-level defense talks over peninsula"
        client.close()
    finally:
        code = stop_process(proc, 30)
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert code == 0, output
    assert "embedded redis-server stopped" in output
    try:
        os.kill(redis_pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the embedded redis-server outlived `ingest run`")
    assert (data / "redis" / "appendonly.aof").stat().st_size > 0
    assert (data / "items.db").exists()

    # Persistence: a second run finds the stream as it was.
    proc = _start(env)
    try:
        _wait_for(lambda: _ping(sock), 30, "the embedded Redis to restart")
        client = redis.Redis(unix_socket_path=str(sock))
        assert client.xlen("ingest:items") == 1
        client.close()
    finally:
        assert stop_process(proc, 30) == 0


def test_commands_say_what_to_start_when_nothing_runs(tmp_path: Path) -> None:
    proc = subprocess.run([*INGEST, "enqueue", "http://127.0.0.1:9/feed"], env=_bare_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "ingest run" in proc.stderr and "INGEST_REDIS_URL" in proc.stderr


def test_arq_command_line_runs_the_same_worker_settings() -> None:
    code = "import workers.settings as s; print(s.WorkerSettings.queue_name, len(s.WorkerSettings.functions))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**_bare_env(Path("/tmp")), "INGEST_NAMESPACE": "abc"})
    assert out.stdout.split() == ["abc:queue", "3"], out.stderr  # fetch_once, parse_feed, fetch_article (#15)
