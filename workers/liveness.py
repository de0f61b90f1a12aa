"""A worker process's side of liveness: heartbeat thread, stall backstop, job notes, reaper.

Why a thread: the heartbeat must go on while a long (but legitimate) parse
holds the event loop, or a busy worker would look dead and lose its jobs.
The thread also watches the event loop: a loop tick every half second
proves the loop still runs. If no tick came for `parse_deadline +
worker_stall_grace` seconds, something the parse deadline could not
interrupt holds the process (C code, a swallowed alarm); then, in a real
worker process (`exit_on_stall`), the thread exits the process at once, and
arq runs its jobs again elsewhere (the reaper frees them). If even the thread
cannot run (C code holding the GIL), it stops touching `alive_file`, and
`ingest run`'s supervisor kills the process.

The reaper runs here too, every third of the heartbeat TTL, so workers on
other machines free the jobs of a whole `ingest run` that was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
import redis.asyncio as aioredis

from ingest.keys import Keys
from ingest.liveness import beat_sync, forget_job, note_job, reap
from ingest.settings import Settings
from workers import deadline

__all__ = ["STALL_EXIT_CODE", "WorkerLiveness"]

log = logging.getLogger(__name__)

STALL_EXIT_CODE = 70  # EX_SOFTWARE: the process stopped itself, stuck past its deadline


class WorkerLiveness:
    def __init__(
        self, settings: Settings, worker_id: str, alive_file: Path | None, exit_on_stall: bool
    ) -> None:
        self.settings = settings
        self.keys = Keys.for_settings(settings)
        self.worker_id = worker_id
        self.alive_file = alive_file
        self.exit_on_stall = exit_on_stall
        self.period = settings.worker_heartbeat_ttl / 3
        self.stall_limit = settings.parse_deadline + settings.worker_stall_grace
        self._last_tick = time.monotonic()
        self.jobs_done = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop whose ticks prove life
        self._tick_handle: asyncio.TimerHandle | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self._sync = redis.Redis.from_url(settings.effective_queue_url,
                                          socket_timeout=self.period, socket_connect_timeout=self.period)

    def start(self, client: aioredis.Redis, data: aioredis.Redis | None = None) -> None:
        """Heartbeat and reap on `client`, the queue's Redis; count on `data`, the data's."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._tick(loop)
        # A deadline section that ended proves life as well as a tick: sections of several
        # documents or article pages may run back to back before the tick's turn comes.
        self._unlisten = deadline.on_section_end(self._alive)
        self._beat()  # alive before the first job can be noted
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {self.worker_id}",
                                        daemon=True)
        self._thread.start()
        self._reaper = loop.create_task(self._reap_forever(client, data or client))

    async def stop(self, client: aioredis.Redis) -> None:
        self._stop.set()
        if self._unlisten:
            self._unlisten()
        if self._tick_handle:
            self._tick_handle.cancel()
        if self._reaper:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        if self._thread:
            await asyncio.to_thread(self._thread.join, self.period + 1)
        with contextlib.suppress(Exception):
            await client.delete(self.keys.worker(self.worker_id))
        self._sync.close()

    # arq calls its job hooks outside its own error handling: a Redis error here would
    # end the worker, so the note is best effort (without it, arq's own expiry applies).

    async def job_started(self, client: aioredis.Redis, job_id: str) -> None:
        try:
            await note_job(client, self.keys, job_id, self.worker_id)
        except (redis.RedisError, OSError) as e:
            log.warning("could not note job %s as ours: %s", job_id, e)

    async def job_finished(self, client: aioredis.Redis, job_id: str) -> None:
        self.jobs_done += 1
        try:
            await forget_job(client, self.keys, job_id, self.worker_id)
        except (redis.RedisError, OSError) as e:
            log.warning("could not clear the note of job %s: %s", job_id, e)

    # -- the loop's proof of life ----------------------------------------------

    def _alive(self) -> None:
        self._last_tick = time.monotonic()

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._last_tick = time.monotonic()
        if not self._stop.is_set():
            self._tick_handle = loop.call_later(0.5, self._tick, loop)

    # -- the thread --------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if self._loop is not None and self._loop.is_closed():
                return  # the loop ended without on_shutdown (a test, a crash): nothing to watch
            stalled = time.monotonic() - self._last_tick
            if stalled > self.stall_limit:
                log.critical("worker %s: event loop stuck for %.0f s (parse_deadline %g s + grace "
                             "%g s); %s", self.worker_id, stalled, self.settings.parse_deadline,
                             self.settings.worker_stall_grace,
                             "exiting so its jobs run again" if self.exit_on_stall else "not exiting")
                if self.exit_on_stall:
                    os._exit(STALL_EXIT_CODE)
                continue  # stop heartbeating: a supervisor (if any) ends it
            self._beat()

    def _beat(self) -> None:
        try:
            beat_sync(self._sync, self.keys, self.worker_id, self.settings.worker_heartbeat_ttl,
                      self.jobs_done)
        except (redis.RedisError, OSError) as e:  # Redis away: arq waits it out too
            log.debug("heartbeat of %s failed: %s", self.worker_id, e)
        if self.alive_file is not None:
            with contextlib.suppress(OSError):
                self.alive_file.touch()

    # -- the reaper ---------------------------------------------------------------

    async def _reap_forever(self, client: aioredis.Redis, data: aioredis.Redis) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                freed = await reap(client, self.keys, data=data)
            except (redis.RedisError, OSError) as e:
                log.debug("reaper: %s", e)
                continue
            if freed:
                log.warning("freed %d jobs of dead workers to run again: %s", len(freed),
                            ", ".join(freed[:5]))
