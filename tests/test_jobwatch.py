"""`ingest enqueue --wait` says what is known when the wait ends (#12 item 10)."""

from __future__ import annotations

import pytest

from ingest.jobwatch import JobProgress, wait_message
from ingest.settings import Settings
from tests.conftest import running_worker
from tests.farm import Farm
from tests.helpers import run_cli


@pytest.mark.parametrize(("progress", "says"), [
    (JobProgress("queued", ahead=3), "still queued behind 3 other jobs"),
    (JobProgress("queued", ahead=0), "still queued: no worker has taken it"),
    (JobProgress("in_progress", job_try=1, worker="host:42", since="2026-01-01T00:00:00Z"),
     "running since 2026-01-01T00:00:00Z on worker host:42 and will finish"),
    (JobProgress("in_progress", job_try=2, worker="host:42"), "on worker host:42 (try 2)"),
    (JobProgress("deferred", job_try=2, retry_at="2026-01-01T00:00:05Z"),
     "waits for try 2 at 2026-01-01T00:00:05Z"),
    (JobProgress("not_found"), "no longer known"),
])
def test_wait_message_says_what_is_known(progress: JobProgress, says: str) -> None:
    assert says in wait_message(1, progress)


async def test_wait_without_a_worker_says_the_job_is_still_queued(settings: Settings, farm: Farm) -> None:
    code, _, err = await run_cli(settings, "enqueue", "--wait", "--timeout", "1", farm.url("feed/a.xml"))
    assert code == 1
    assert "still queued" in err and "Is a worker running" in err


async def test_wait_on_a_busy_worker_says_since_when_and_where(settings: Settings, farm: Farm) -> None:
    """The worker is busy with the job (a slow feed): not "is a worker running?"."""
    async with running_worker(settings):
        code, _, err = await run_cli(settings, "enqueue", "--wait", "--timeout", "1.5",
                                     farm.url("slow/5/a.xml"))
    assert code == 1
    assert "the job is running since 20" in err and " on worker " in err, err
    assert "Is a worker running" not in err
