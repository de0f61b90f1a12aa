"""Worker processes beside `ingest run`: start N, restart the ones that die, stop them last.

Why processes: parsing and normalizing are CPU-bound Python. In the poller's
event loop they stalled its fetchers and used one core; in processes of their
own they use every core and the poller only fetches (issue #9).

Each slot runs `python -m ingest worker --supervised --worker-id ID
--alive-file PATH` with the parent's Settings in its environment (every
setting spelled out as INGEST_*, so a --config file or a --workers flag
reaches the child exactly). The child

* ignores SIGINT (Ctrl-C reaches the whole process group: the parent decides
  the order of shutdown) and stops gracefully when its stdin closes, which is
  how the parent asks, and also what happens when the parent dies;
* touches PATH on every heartbeat (workers/liveness.py).

The supervisor
* stops the whole service when a worker exits with CANNOT_START_STATUS (its
  code does not import: a broken install), saying why, instead of restarting it
  every few seconds while the service looks alive (#19);
* restarts a worker that exits otherwise, with backoff (0.5 s doubling to 30 s, reset
  after a minute of good health), logging and counting it (`worker_restarts`
  in <ns>:stats), and frees the dead worker's jobs at once
  (ingest/liveness.py `reap`), so they run again within a poll;
* kills (SIGKILL) a worker whose PATH is older than `parse_deadline +
  worker_stall_grace`: stuck where neither the parse deadline nor its own
  heartbeat thread could act (C code holding the GIL);
* on stop, closes every child's stdin (finish running jobs within
  `shutdown_grace`), and kills what is left after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ingest.keys import Keys
from ingest.liveness import new_worker_id, reap
from ingest.settings import ENV_PREFIX, Settings

__all__ = ["CANNOT_START_STATUS", "WorkerProcesses", "cannot_start_file", "restart_delay", "settings_environ"]

log = logging.getLogger(__name__)

STARTUP_LIMIT = 60.0  # seconds a new worker may take before its first heartbeat
HEALTHY_AFTER = 60.0  # a worker that ran this long restarts with the shortest delay
# A worker exits with this when its code does not import (`ingest worker`, ingest/cli/main.py),
# after writing why to `cannot_start_file(alive_file)`: the supervisor stops the service.
CANNOT_START_STATUS = 3


def cannot_start_file(alive_file: str | Path) -> Path:
    """Where a supervised worker that cannot import writes why, beside its heartbeat file."""
    return Path(f"{alive_file}.cannot-start")


def settings_environ(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """Pure: `base` without INGEST_* variables, plus every setting of `settings` as INGEST_*."""
    env = {k: v for k, v in base.items() if not k.startswith(ENV_PREFIX)}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[ENV_PREFIX + field.name.upper()] = text
    return env


def restart_delay(previous: float, ran_for: float) -> float:
    """Pure: seconds before the next start of a worker that ran `ran_for` seconds."""
    if ran_for >= HEALTHY_AFTER:
        return 0.5
    return min(max(previous * 2, 0.5), 30.0)


@dataclasses.dataclass
class _Child:
    worker_id: str
    alive_file: Path
    proc: asyncio.subprocess.Process
    started: float


class WorkerProcesses:
    """`count` supervised worker processes; `run` until `stop` is set, then `shutdown`."""

    def __init__(self, settings: Settings, count: int, redis: aioredis.Redis,
                 queue: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.count = count
        self.redis = redis
        self.queue = queue or redis  # arq's markers and the workers' notes live there
        self.keys = Keys.for_settings(settings)
        # The file is touched every third of the heartbeat TTL: one period of slack.
        self.stall_limit = (settings.parse_deadline + settings.worker_stall_grace
                            + settings.worker_heartbeat_ttl / 3)
        self.children: dict[int, _Child] = {}
        self.restarts = 0
        # Why the worker code cannot start (a broken install), once a worker said so: the
        # service stops instead of restarting workers forever (`ingest run` exits with it).
        self.fatal: str | None = None
        self._stopping = False
        self._dir = Path(tempfile.mkdtemp(prefix="ingest-workers-"))
        self._env = settings_environ(settings, dict(os.environ))

    async def run(self, stop: asyncio.Event) -> None:
        slots = [asyncio.create_task(self._slot(n, stop)) for n in range(self.count)]
        try:
            await asyncio.gather(*slots)
        finally:
            for slot in slots:
                slot.cancel()
            await asyncio.gather(*slots, return_exceptions=True)

    async def _slot(self, n: int, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set() and not self._stopping:
            child = await self._start(n)
            code = await self._watch(child, stop)
            if stop.is_set() or self._stopping:
                return
            if code == CANNOT_START_STATUS:
                self._give_up(child, stop)
                return
            ran = time.monotonic() - child.started
            self.restarts += 1
            freed = await self._free_jobs(child.worker_id)
            delay = restart_delay(delay, ran)
            log.error("worker process %s (pid %d) exited with %s after %.0f s; %d jobs freed; "
                      "restarting in %.1f s", child.worker_id, child.proc.pid, _describe(code), ran,
                      freed, delay)
            with contextlib.suppress(RedisError, OSError):
                await self.redis.hincrby(self.keys.stats, "worker_restarts", 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _give_up(self, child: _Child, stop: asyncio.Event) -> None:
        """A worker whose code does not import: stop the whole service, saying why."""
        try:
            reason = cannot_start_file(child.alive_file).read_text(encoding="utf-8").strip()
        except OSError:
            reason = ""
        self.fatal = reason or f"worker process {child.worker_id} exited with code {CANNOT_START_STATUS}"
        log.critical("worker processes cannot start: %s; stopping the service (a restart cannot mend an "
                     "install: reinstall, e.g. `pip install --no-deps --require-hashes -r requirements/service.txt`)",
                     self.fatal)
        stop.set()

    async def _start(self, n: int) -> _Child:
        worker_id = new_worker_id() + f"-w{n}"
        alive = self._dir / f"{worker_id}.alive"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingest", "worker", "--supervised", "--worker-id", worker_id,
            "--alive-file", str(alive), env=self._env, stdin=asyncio.subprocess.PIPE,
        )
        child = _Child(worker_id, alive, proc, time.monotonic())
        self.children[n] = child
        log.info("worker process %s started (pid %d)", worker_id, proc.pid)
        return child

    async def _watch(self, child: _Child, stop: asyncio.Event) -> int:
        """Wait for the child to exit; kill it if its heartbeat file goes stale."""
        while True:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(child.proc.wait(), 1.0)
            if self._stopping:
                continue  # shutdown() owns the child now
            stale = self._staleness(child)
            if stale is not None:
                log.error("worker process %s (pid %d) stopped heartbeating (%.0f s); killing it",
                          child.worker_id, child.proc.pid, stale)
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()

    def _staleness(self, child: _Child) -> float | None:
        """Seconds without a heartbeat if past the limit, else None."""
        now = time.monotonic()
        try:
            age = time.time() - child.alive_file.stat().st_mtime
        except FileNotFoundError:
            waited = now - child.started
            return waited if waited > max(STARTUP_LIMIT, self.stall_limit) else None
        return age if age > self.stall_limit else None

    async def _free_jobs(self, worker_id: str) -> int:
        try:
            return len(await reap(self.queue, self.keys, dead_worker=worker_id, data=self.redis))
        except (RedisError, OSError) as e:  # the workers' own reapers catch up after the TTL
            log.warning("could not free the jobs of %s now: %s", worker_id, e)
            return 0

    async def shutdown(self, grace: float) -> None:
        """Ask every worker to finish its jobs (stdin closed); kill those still running after."""
        self._stopping = True
        children = list(self.children.values())
        for child in children:
            if child.proc.stdin is not None:
                child.proc.stdin.close()
        waits = [asyncio.ensure_future(c.proc.wait()) for c in children]
        if waits:
            await asyncio.wait(waits, timeout=grace + 5)
            for child in children:
                if child.proc.returncode is None:
                    log.warning("worker process %s did not stop in time; killing it", child.worker_id)
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.kill()
            await asyncio.gather(*waits, return_exceptions=True)
            for child in children:
                if child.proc.returncode != 0:  # killed or crashed: its jobs go on elsewhere
                    await self._free_jobs(child.worker_id)
        shutil.rmtree(self._dir, ignore_errors=True)


def _describe(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"code {code}"
