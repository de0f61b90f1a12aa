"""arq tasks: decode arguments, run the stages in order, report. Nothing else.

arq retries a job only when the worker dies mid-job or the task raises
`Retry`; any other exception fails the job at once. So:

* every task is idempotent: delivery is one atomic check-and-publish in
  Redis, so a job run twice (concurrently, or again after its worker died)
  never publishes an item version twice, and the feed counters add only
  what was newly delivered;
* transient failures become `Retry(defer=job_retry_seconds * try)`: Redis
  unreachable mid-job (a restart, a failover) and a delivery conflict that
  outlasted the deliverer's own re-reads;
* on the last try (`job_max_tries`) a transient failure is counted
  (`job_failures`) and dead-lettered (kind `job`, with the URL, so
  `ingest dead retry` can enqueue it again) instead of being left to arq's
  bare "max retries exceeded"; so is a job whose worker died on every try
  (a document that kills its worker is not run forever).

Expected failures (fetch, parse) are outcomes, not crashes: counted, logged,
dead-lettered when the input itself is bad, and returned as a value
(`{"error": ..., "stage": ...}`) that `ingest enqueue --wait` reports. A
failed fetch is not retried here: the polling scheduler owns per-feed
backoff and Retry-After, and a manual `enqueue --wait` wants the answer now.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from arq import Retry
from redis.exceptions import RedisError

from ingest.deliver.dead import dead_letter
from ingest.errors import DeliveryConflict, FetchError, ParseError
from ingest.logs import feed_context
from ingest.models import FeedSpec, Fetched, feed_id_for_url
from ingest.poll.fetch import fetch, utc_now_iso
from ingest.poll.registry import feed_spec_for_url, record_failure
from ingest.urls import canonical_url
from workers import deadline
from workers.article.fetch import ArticleFetcher
from workers.context import WorkerContext
from workers.pipeline import process_document

__all__ = ["fetch_once", "parse_feed", "retry_delay"]

log = logging.getLogger(__name__)

# Failures worth another try: they say nothing about the input.
TRANSIENT = (DeliveryConflict, RedisError, ConnectionError)


def retry_delay(job_try: int, base_seconds: float) -> float:
    """Pure: seconds before try `job_try + 1` (linear backoff: Redis restarts take seconds)."""
    return base_seconds * max(job_try, 1)


def _failure(stage: str, spec: FeedSpec, error: Exception) -> dict[str, Any]:
    return {"error": str(error), "stage": stage, "feed_id": spec.feed_id, "feed_url": spec.url}


def _articles(app: WorkerContext) -> ArticleFetcher:
    fetcher = ArticleFetcher(app.session, app.redis, app.keys, app.settings)
    fetcher.queue = app.queue  # deferred follow-ups are arq jobs
    return fetcher


async def _process(app: WorkerContext, spec: FeedSpec, fetched: Fetched) -> dict[str, Any]:
    token = deadline.start(app.settings.parse_deadline)
    stopped = ""
    try:
        processed = await process_document(app.deliverer, spec, fetched, app.clusters,
                                           app.normalize, app.limits,
                                           _articles(app), note_success=True)
    except deadline.ParseDeadlineExceeded as e:
        stopped = str(e)  # handled below, once the traceback (and the document) is dropped
    except ParseError as e:
        log.warning("parse failed: %s", e)
        await record_failure(app.redis, app.keys, spec, "parse_errors", str(e), fetched.fetched_at,
                             disable_after=app.settings.max_consecutive_errors)
        await dead_letter(app.redis, app.keys, "parse", spec, str(e), fetched.fetched_at)
        return _failure("parse", spec, e)
    finally:
        deadline.current_reset(token)
    if stopped:
        return await _past_deadline(app, spec, fetched, stopped)
    # The feed's outcome and `fetches_ok` (and a poll's news on a pushed feed, #11) were
    # noted by process_document with its counters, in its last round trip (decision 159).
    return processed.result.as_dict()


async def _past_deadline(app: WorkerContext, spec: FeedSpec, fetched: Fetched,
                         reason: str) -> dict[str, Any]:
    """A document whose parse ran past `parse_deadline`: counted, dead-lettered, memory freed.

    It counts against the feed like a body that is not a feed, so a feed that
    is hostile on every poll is disabled after max_consecutive_errors.
    """
    gc.collect()  # the half-built document and its traceback are garbage now
    error = f"{spec.url}: {reason}"
    log.warning("%s (%d bytes); dead-lettered", error, len(fetched.body))
    await record_failure(app.redis, app.keys, spec, "parse_deadline_exceeded", error,
                         fetched.fetched_at, disable_after=app.settings.max_consecutive_errors)
    await dead_letter(app.redis, app.keys, "parse", spec, error, fetched.fetched_at)
    return _failure("parse", spec, ParseError(error))


async def _transient_guard(
    ctx: dict[str, Any], app: WorkerContext, spec: FeedSpec,
    body: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run a task body; transient failures -> Retry, or dead-letter on the last try.

    arq allows one try more than job_max_tries (workers/settings.py). A try
    that returns never asks for another past job_max_tries (see below), so
    that extra try only comes after tries that never returned: the worker
    died, was killed as stuck, or was stopped, each time. Such a job (a
    document that kills its worker) is dead-lettered instead of run again.
    """
    job_try = int(ctx.get("job_try") or 1)
    feed_context(spec.feed_id, spec.url)  # JSON log lines of this job name the feed
    if job_try > app.settings.job_max_tries:
        error = (f"gave up after {job_try - 1} tries: the worker running it died or was "
                 "stopped each time")
        log.error("job for %s dead-lettered: %s", spec.url, error)
        await record_failure(app.redis, app.keys, spec, "job_failures", error, utc_now_iso())
        await dead_letter(app.redis, app.keys, "job", spec, error, utc_now_iso())
        return {**_failure("job", spec, RuntimeError(error)), "error": error}
    try:
        return await body()
    except TRANSIENT as e:
        error = f"{type(e).__name__}: {e}"
        if job_try < app.settings.job_max_tries:
            delay = retry_delay(job_try, app.settings.job_retry_seconds)
            log.warning("job for %s: %s; retry %d in %.1f s", spec.url, error, job_try + 1, delay)
            raise Retry(defer=delay) from e
        log.error("job for %s failed %d times, dead-lettered: %s", spec.url, job_try, error)
        # If Redis is still gone this raises and arq fails the job loudly; nothing is hidden.
        await record_failure(app.redis, app.keys, spec, "job_failures", error, utc_now_iso())
        await dead_letter(app.redis, app.keys, "job", spec, error, utc_now_iso())
        return {**_failure("job", spec, e), "error": error}


async def fetch_once(ctx: dict[str, Any], url: str) -> dict[str, Any]:
    """`ingest enqueue URL`: fetch the URL now and run it through parse/normalize/deliver."""
    app = WorkerContext.of(ctx)

    async def body() -> dict[str, Any]:
        spec = await feed_spec_for_url(app.redis, app.keys, url)
        try:
            fetched = await fetch(app.session, url, app.settings)
        except FetchError as e:
            log.warning("fetch failed: %s", e)
            await record_failure(app.redis, app.keys, spec, "fetch_errors", str(e), utc_now_iso())
            return _failure("fetch", spec, e)
        return await _process(app, spec, fetched)

    placeholder = FeedSpec(feed_id=feed_id_for_url(canonical_url(url) or url), url=url)
    return await _transient_guard(ctx, app, placeholder, body)


async def parse_feed(
    ctx: dict[str, Any], spec: dict[str, Any], fetched: dict[str, Any]
) -> dict[str, Any]:
    """A body the daemon's fetchers already downloaded: parse, normalize, deliver."""
    app = WorkerContext.of(ctx)
    feed = FeedSpec(**{**spec, "tags": tuple(spec.get("tags") or ())})
    return await _transient_guard(ctx, app, feed, lambda: _process(app, feed, Fetched(**fetched)))
