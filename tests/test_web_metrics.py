"""/metrics is service-wide: counted in Redis by a separate worker process and by the
daemon's poller, served by the daemon's own HTTP server (`ingest run`), parsed with
Prometheus's parser. Also: with log_format=json, the lines about a fetch carry the
feed id and URL."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from ingest.settings import Settings
from tests.conftest import INGEST, env_for, free_port
from tests.farm import Farm
from tests.helpers import feed_id_of, stop_process, wait_until
from tests.webserver import TOKEN


def _request(base: str, path: str, method: str = "GET", body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback test server
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _metric(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = _request(base, "/metrics")
    return _samples(body.decode()) if status == 200 else {}


def test_metrics_count_what_a_separate_worker_and_the_poller_did(settings: Settings, farm: Farm) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(settings) | {"INGEST_LISTEN": f"127.0.0.1:{port}", "INGEST_API_TOKEN": TOKEN,
                               "INGEST_SINK_BLOCK_MS": "100"}
    worker_env = env | {"INGEST_LOG_FORMAT": "json", "INGEST_LOG_LEVEL": "INFO", "INGEST_LISTEN": ""}
    daemon = subprocess.Popen([*INGEST, "run", "--no-workers"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    worker = subprocess.Popen([*INGEST, "worker"], env=worker_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert wait_until(lambda: _request(base, "/healthz")[0] == 200, 30), "ingest run serves no HTTP"
        good, bad = farm.url("feed/m.xml"), farm.url("status/500")
        status, body = _request(base, "/api/v1/feeds", "POST", {"url": good})
        assert status == 201, body
        status, body = _request(base, "/api/v1/feeds", "POST", {"url": bad, "force": True})
        assert status == 201, body
        # The worker process parses the first body: three new items.
        key_new = ("ingest_items_total", (("kind", "new"),))
        assert wait_until(lambda: _metric(base).get(key_new) == 3, 60), _metric(base)
        # The daemon's poller polls both now: 304 for the good one, HTTP 500 for the other.
        status, _ = _request(base, f"/api/v1/feeds/{feed_id_of(good)}/poll", "POST")
        assert status == 202
        want = {("ingest_fetches_total", (("outcome", "304"),)), ("ingest_fetches_total", (("outcome", "http_500"),))}
        assert wait_until(lambda: want <= set(_metric(base)), 60), sorted(_metric(base))
        m = _metric(base)
        assert m[("ingest_fetch_duration_seconds_count", ())] >= 2
        assert m[("ingest_fetch_duration_seconds_bucket", (("le", "+Inf"),))] == m[
            ("ingest_fetch_duration_seconds_count", ())]
        assert m[("ingest_parse_seconds_count", ())] == 1  # counted in the worker process
        assert m[("ingest_fetch_to_stream_seconds_count", ())] == 3
        assert m[("ingest_stream_length", ())] == 3
        assert m[("ingest_feeds", (("state", "failing"),))] == 1
        assert ("ingest_group_pending", (("group", "storage"),)) in m
        assert m[("ingest_queue_depth", ())] == 0
        assert m[("ingest_redis_connections_received_total", ())] >= 2  # two processes at least
    finally:
        stop_process(worker, 20)
        stop_process(daemon, 20)
    # JSON logs: one object a line; the lines about the fetched feed name it.
    assert worker.stderr is not None
    lines = [orjson.loads(line) for line in worker.stderr.read().decode().splitlines() if line.strip()]
    about = [entry for entry in lines if feed_id_of(good) in entry["message"]]
    assert about and all(e["feed_id"] == feed_id_of(good) and e["feed_url"] == good for e in about)
