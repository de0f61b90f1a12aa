"""arq WorkerSettings: `arq workers.settings.WorkerSettings` runs a worker.

`ingest worker` and `ingest run` build the same Worker from `worker_options`,
passing the Settings they loaded (with --config) through arq's ctx.
"""

from __future__ import annotations

from typing import Any

from arq.worker import func

from ingest.jobcodec import deserialize_job, serialize_job
from ingest.keys import Keys
from ingest.redis_conn import arq_redis_settings
from ingest.settings import Settings, load_settings
from workers.article.followup import fetch_article
from workers.context import after_job_end, on_job_start, on_shutdown, on_startup
from workers.tasks import fetch_once, parse_feed

__all__ = ["WorkerSettings", "worker_options"]

# A parse_feed job's result is read by nobody, and arq's stored result repeats
# the job's arguments, the whole fetched body: kept for `keep_result` (an hour)
# it was the largest thing in Redis after the stream (#9). fetch_once keeps its
# result: `ingest enqueue --wait` reads it.
FUNCTIONS = [fetch_once, func(parse_feed, keep_result=0), func(fetch_article, keep_result=0)]


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for arq.Worker, tuned past arq's defaults.

    arq polls every 0.5 s and reads 100 jobs a poll by default (~200 jobs/s);
    a shorter poll and a larger read limit keep a busy worker fed.
    """
    return {
        "functions": FUNCTIONS,
        "queue_name": Keys.for_settings(settings).queue,
        "redis_settings": arq_redis_settings(settings),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "on_job_start": on_job_start,
        "after_job_end": after_job_end,
        "max_jobs": settings.worker_max_jobs,
        "job_timeout": settings.job_timeout,
        "poll_delay": settings.worker_poll_delay,
        "queue_read_limit": max(100, settings.worker_max_jobs * 4),
        "keep_result": 3600,
        # One more than job_max_tries: the extra try dead-letters a job whose worker
        # died on every try (workers/tasks.py) instead of arq dropping it silently.
        "max_tries": settings.job_max_tries + 1,
        # msgpack instead of arq's pickle: nothing in Redis can run code in a worker.
        "job_serializer": serialize_job,
        "job_deserializer": deserialize_job,
        "ctx": {"settings": settings},
    }


def _settings_class() -> type:
    """The same options as class attributes, the form `arq workers.settings.WorkerSettings` reads."""
    return type("WorkerSettings", (), dict(worker_options(load_settings())))


# For the `arq` command line; reads INGEST_* / INGEST_CONFIG at import.
WorkerSettings = _settings_class()
