"""arq tasks: decode arguments, run the stages in order, report. Nothing else.

arq retries a job only when the worker dies mid-job or the task raises
`Retry`; any other exception fails the job at once. Tasks are idempotent
(delivery is an atomic check-and-publish), so a retry never duplicates.

Expected failures (fetch, parse) are outcomes, not crashes: they are counted,
logged, dead-lettered when the input itself is bad, and returned as a value
(`{"error": ..., "stage": ...}`) that `ingest enqueue --wait` reports. Only
unexpected exceptions fail the job with a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry

from ingest.errors import DeliveryConflict, FetchError, ParseError
from ingest.fetch import fetch, utc_now_iso
from ingest.models import FeedSpec, Fetched
from ingest.registry import dead_letter, feed_spec_for_url, record_failure, record_success
from workers.context import WorkerContext
from workers.pipeline import process_document

__all__ = ["fetch_once", "parse_feed"]

log = logging.getLogger(__name__)


def _failure(stage: str, spec: FeedSpec, error: Exception) -> dict[str, Any]:
    return {"error": str(error), "stage": stage, "feed_id": spec.feed_id, "feed_url": spec.url}


async def _process(app: WorkerContext, spec: FeedSpec, fetched: Fetched) -> dict[str, Any]:
    try:
        processed = await process_document(app.deliverer, spec, fetched, app.clusters,
                                           app.normalize)
    except ParseError as e:
        log.warning("parse failed: %s", e)
        await record_failure(app.redis, app.keys, spec, "parse_errors", str(e), fetched.fetched_at)
        await dead_letter(app.redis, app.keys, "parse", spec, str(e), fetched.fetched_at)
        return _failure("parse", spec, e)
    except DeliveryConflict as e:
        raise Retry(defer=1) from e
    await record_success(app.redis, app.keys, processed.result, processed.title,
                         fetched.fetched_at, fetched.status)
    return processed.result.as_dict()


async def fetch_once(ctx: dict[str, Any], url: str) -> dict[str, Any]:
    """`ingest enqueue URL`: fetch the URL now and run it through parse/normalize/deliver."""
    app = WorkerContext.of(ctx)
    spec = await feed_spec_for_url(app.redis, app.keys, url)
    try:
        fetched = await fetch(app.session, url, app.settings)
    except FetchError as e:
        log.warning("fetch failed: %s", e)
        await record_failure(app.redis, app.keys, spec, "fetch_errors", str(e), utc_now_iso())
        return _failure("fetch", spec, e)
    return await _process(app, spec, fetched)


async def parse_feed(ctx: dict[str, Any], spec: dict[str, Any], fetched: dict[str, Any]) -> dict[str, Any]:
    """A body the daemon's fetchers already downloaded: parse, normalize, deliver."""
    app = WorkerContext.of(ctx)
    spec["tags"] = tuple(spec.get("tags") or ())
    return await _process(app, FeedSpec(**spec), Fetched(**fetched))
