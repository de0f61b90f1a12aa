"""`ingest run` and `ingest worker`: wiring only, no decisions.

`ingest run` owns: the embedded Redis server (when no redis_url is set),
the poller (scheduler claims + async fetchers) and the storage sink in its
own event loop, and `workers` arq worker processes beside it (one per core
by default; ingest/supervise.py), so parsing never runs on the poller's
loop. Each part is supervised: if Redis goes away, the parts wait and carry
on when it is back; a worker process that dies is restarted and its jobs run
again at once. SIGTERM or SIGINT stops taking new claims, lets in-flight
fetches and running jobs finish (bounded by `shutdown_grace`), stops the
worker processes, acknowledges what was stored, and stops the embedded
Redis last so its append-only file is flushed.

To add a part: a coroutine that runs until `stop` is set, started with
`_supervise` in `_run_parts` (see the webhook parts).

Worker code lives in the `workers` package, which imports `ingest`; to keep
that one-way, the worker options are loaded by dotted name, the way arq
itself loads `workers.settings.WorkerSettings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from arq.worker import Worker

from ingest.embedded import RedisServer
from ingest.errors import RedisUnavailable, WorkersCannotStart
from ingest.keys import Keys
from ingest.poll.fetch import new_session
from ingest.poll.poller import Poller
from ingest.poll.scheduler import Scheduler, new_token
from ingest.redis_conn import connect, connect_arq, connect_queue
from ingest.settings import Settings
from ingest.store import open_sink
from ingest.store.consume import SinkConsumer, default_consumer_name
from ingest.supervise import WorkerProcesses
from ingest.wakeup import PromptWorker

__all__ = ["WORKER_OPTIONS", "make_worker", "run_service", "run_worker_forever", "worker_code_problem"]

log = logging.getLogger(__name__)

WORKER_OPTIONS = "workers.settings:worker_options"


def worker_code_problem() -> str | None:
    """Why the worker code does not import, or None.

    `ingest` never imports `workers` (it enqueues jobs by name), so a broken install
    (a dependency missing, or a release that moved a module) shows only here: once,
    at a worker's start, with the error that says which package."""
    try:
        importlib.import_module(WORKER_OPTIONS.partition(":")[0])
    except Exception as e:  # noqa: BLE001 - any import-time failure is the same verdict
        return f"the worker code does not import: {type(e).__name__}: {e}"
    return None


def make_worker(settings: Settings, handle_signals: bool, **ctx: Any) -> Worker:
    """An arq Worker with our options; `ctx` adds to its context (workers/context.py CTX_*)."""
    module_name, _, attr = WORKER_OPTIONS.partition(":")
    options: Callable[[Settings], dict[str, Any]] = getattr(importlib.import_module(module_name), attr)
    kwargs = options(settings)
    kwargs["ctx"] = {**kwargs["ctx"], **ctx}
    return PromptWorker(**kwargs, handle_signals=handle_signals)


async def _discard_worker(worker: Worker) -> None:
    """Release a worker that died with its Redis: arq's close() would stop at its
    first Redis call and leak the HTTP session and the pool."""
    for task in worker.tasks.values():
        task.cancel()
    with contextlib.suppress(Exception):
        if worker.on_shutdown:
            await worker.on_shutdown(worker.ctx)
    with contextlib.suppress(Exception):
        await worker.pool.close(close_connection_pool=True)


def _worker_part(
    settings: Settings, holder: list[Worker], ctx: dict[str, Any]
) -> Callable[[], Awaitable[None]]:
    """A supervised part running one arq worker; a failed one is discarded before the next."""

    async def run_worker() -> None:
        worker = make_worker(settings, handle_signals=False, **ctx)
        holder[:] = [worker]
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            raise
        except Exception:
            await _discard_worker(worker)
            raise

    return run_worker


async def _stop_worker(worker: Worker, grace: float) -> None:
    """Stop picking jobs, give running ones `grace` seconds, cancel the rest."""
    worker.allow_pick_jobs = False
    deadline = asyncio.get_running_loop().time() + grace
    while any(not t.done() for t in worker.tasks.values()):
        if asyncio.get_running_loop().time() >= deadline:
            log.warning("cancelling %d jobs still running after %.0f s", len(worker.tasks), grace)
            break
        await asyncio.sleep(0.05)
    with contextlib.suppress(Exception):
        await worker.close()


FIRST_RETRY = 0.5  # seconds before the first retry; doubled each time up to MAX_RETRY
MAX_RETRY = 10.0


def next_retry(delay: float) -> float:
    """The wait after `delay`: doubled, capped, so a long outage costs a try every 10 s."""
    return min(delay * 2, MAX_RETRY)


async def _supervise(name: str, run_once: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run a part until stop; if it fails (Redis down), log and start it again with backoff."""
    delay = FIRST_RETRY
    while not stop.is_set():
        try:
            await run_once()
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a supervisor must outlive its part
            log.error("%s stopped: %s: %s; restarting in %.1f s", name, type(e).__name__, e, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = next_retry(delay)


async def _wait_for_redis(settings: Settings, stop: asyncio.Event) -> bool:
    """Wait until the data's and the queue's Redis answer; False if stopped first.

    Started beside its Redis (compose, systemd), the service may come up first:
    it waits with backoff, saying each time what it waits for, instead of exiting
    1 and counting on a restart policy. Once running, the parts ride out an
    outage themselves (`_supervise`)."""
    delay = FIRST_RETRY
    while not stop.is_set():
        try:
            for open_client in (connect, connect_queue):
                await (await open_client(settings)).aclose()
            return True
        except RedisUnavailable as e:
            log.warning("waiting for Redis: %s; retrying in %.1f s", e, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = next_retry(delay)
    return False


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def _run_parts(settings: Settings, stop: asyncio.Event) -> None:
    keys = Keys.for_settings(settings)
    redis = await connect(settings)
    sink = open_sink(settings.effective_storage_url)
    consumer = SinkConsumer(
        redis, keys, sink,
        group=keys.storage_group, consumer=default_consumer_name(),
        batch_size=settings.sink_batch_size, block_ms=settings.sink_block_ms,
        claim_idle_ms=settings.sink_claim_idle_seconds * 1000,
    )
    pool = await connect_arq(settings)
    session = new_session(settings)
    poller = Poller(settings, redis, pool, session, Scheduler(redis, keys, new_token()))
    workers = WorkerProcesses(settings, settings.worker_processes, redis, queue=pool)

    parts = [
        asyncio.create_task(_supervise("storage sink", lambda: consumer.run(stop), stop)),
        asyncio.create_task(_supervise("poller", lambda: poller.run(stop), stop)),
    ]
    parts += _webhook_parts(settings, redis, keys, stop)
    parts.append(asyncio.create_task(_supervise("stream trimmer", _trimmer(settings, redis, keys, stop), stop)))
    parts.append(asyncio.create_task(_supervise("http server", lambda: _serve_http(settings, stop), stop)))
    from ingest.push.renew import run_renewal  # WebSub lease renewal (#11)
    parts.append(asyncio.create_task(
        _supervise("push renewal", lambda: run_renewal(settings, redis, session, stop), stop)))
    parts.append(asyncio.create_task(workers.run(stop)))
    log.info("service ready: redis %s, storage %s, %d worker processes",
             settings.effective_redis_url, settings.effective_storage_url, workers.count)
    try:
        await stop.wait()
        log.info("stopping: no new claims; finishing fetches and jobs (up to %.0f s)",
                 settings.shutdown_grace)
        # The poller and the sink watch `stop` themselves; the poller releases
        # the leases of fetches it could not finish within the grace period.
        await asyncio.wait(parts[:2], timeout=settings.shutdown_grace + settings.sink_block_ms / 1000 + 1)
        await workers.shutdown(settings.shutdown_grace)
        await asyncio.wait(parts, timeout=settings.shutdown_grace)
    finally:
        for part in parts:
            part.cancel()
        await asyncio.gather(*parts, return_exceptions=True)
        await workers.shutdown(0)  # no-op after a clean stop; kills what is left otherwise
        await sink.close()
        await session.close()
        await pool.aclose()
        await redis.aclose()
    if workers.fatal:
        raise WorkersCannotStart(workers.fatal)


# --- Webhook delivery (#5): one supervised consumer-group part per configured webhook. ---


def _webhook_parts(
    settings: Settings, redis: Any, keys: Keys, stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    """Start a supervised delivery loop for each webhook of `webhooks_file` (none: no parts)."""
    from ingest.deliver.webhooks import WebhookConsumer, load_webhooks

    parts = []
    for spec in load_webhooks(settings.webhooks_file):
        consumer = WebhookConsumer(redis, keys, spec, settings, stop)
        parts.append(asyncio.create_task(_supervise(f"webhook {spec.name}", consumer.run, stop)))
    return parts


# --- end of webhook delivery ---


def _trimmer(settings: Settings, redis: Any, keys: Keys, stop: asyncio.Event) -> Callable[[], Awaitable[None]]:
    """The stream trimmer (#20): keeps the stream for the durable groups, decides backpressure."""
    from ingest.deliver.trim import Trimmer, durable_group_names
    from ingest.deliver.webhooks import load_webhooks

    names = [spec.name for spec in load_webhooks(settings.webhooks_file)]
    trimmer = Trimmer(redis, keys, settings, durable_group_names(settings, keys, names), new_token())
    return lambda: trimmer.run(stop)


async def _serve_http(settings: Settings, stop: asyncio.Event) -> None:
    """The HTTP API, status page and metrics (#10), on `listen` until stop (nothing when empty)."""
    from ingest.web.server import serve

    await serve(settings, stop)


async def run_service(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """The whole service in one process, until SIGTERM/SIGINT (or `stop` is set)."""
    stop = stop or asyncio.Event()
    _install_signals(stop)
    server: RedisServer | None = None
    if settings.embedded:
        server = RedisServer(
            directory=settings.data_path / "redis",
            socket_path=settings.embedded_socket,
            port=settings.embedded_redis_port,
        )
        await asyncio.to_thread(server.start)
    try:
        if await _wait_for_redis(settings, stop):
            await _run_parts(settings, stop)
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
    log.info("stopped")


async def run_worker_forever(
    settings: Settings, worker_id: str = "", alive_file: str = "", supervised: bool = False
) -> None:
    """`ingest worker`: one arq worker process, against a Redis that someone else runs.

    It arms parse deadlines and exits when stuck (workers/liveness.py). Started
    by `ingest run` (`supervised`), it ignores SIGINT and stops when its stdin
    closes: the parent asks that way, and a dead parent closes it too.
    """
    stop = asyncio.Event()
    _install_signals(stop)
    if supervised:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop_on_stdin_eof(stop)
    holder: list[Worker] = []
    ctx = {"worker_id": worker_id, "alive_file": alive_file, "process_guard": True}

    run_worker = _worker_part(settings, holder, ctx)

    task = asyncio.create_task(_supervise("worker", run_worker, stop))
    await stop.wait()
    for worker in holder:
        await _stop_worker(worker, settings.shutdown_grace)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _stop_on_stdin_eof(stop: asyncio.Event) -> None:
    """Set `stop` when stdin reaches end of file (read in a thread: stdin may be a pipe or a tty)."""
    loop = asyncio.get_running_loop()

    def wait_for_eof() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, name="stdin watch", daemon=True).start()
