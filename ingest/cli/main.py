"""The `ingest` command line: thin entry points over the modules of this package.

Every command reads the same Settings (config/default.toml < --config FILE <
INGEST_* environment). Errors this service raises on purpose (IngestError)
print one clear line and exit 1; bad settings exit 2.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ingest import __version__
from ingest.cli import dead as cli_dead
from ingest.cli import feeds as cli_feeds
from ingest.cli import items as cli_items
from ingest.cli import web as cli_web
from ingest.cli.common import QuietPipeGroup, run_async, settings_of
from ingest.errors import Busy, SettingsError
from ingest.keys import Keys
from ingest.logs import configure_logging
from ingest.poll.enqueue import enqueue_fetch, job_outcome
from ingest.poll.fetch import check_scheme
from ingest.redis_conn import connect, connect_arq
from ingest.settings import Settings, load_settings

__all__ = ["main"]

@click.group(cls=QuietPipeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file overriding config/default.toml (also INGEST_CONFIG).")
@click.version_option(__version__, prog_name="ingest")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """News-feed ingestion: fetch, normalize and deliver every item once."""
    try:
        settings = load_settings(config_file)
    except SettingsError as e:
        click.echo(f"configuration error: {e}", err=True)
        sys.exit(2)
    configure_logging(settings)
    ctx.obj = settings


@cli.command()
@click.option("--workers", "workers", type=click.IntRange(0, 256), default=None,
              help="Worker processes to start (default: the `workers` setting, 'auto' = one per core).")
@click.option("--no-workers", is_flag=True, help="Start no worker processes here (same as --workers 0; "
              "run `ingest worker` elsewhere).")
@click.pass_context
def run(ctx: click.Context, workers: int | None, no_workers: bool) -> None:
    """Run the service: embedded Redis (if no redis_url), poller, worker processes, storage sink."""
    import dataclasses

    from ingest.daemon import run_service
    from ingest.gcpace import pace_collector

    settings = settings_of(ctx)
    if no_workers:
        workers = 0
    if workers is not None:  # the flag wins over both settings
        settings = dataclasses.replace(settings, workers=str(workers), run_workers=workers > 0)
    cli_web.check_listen(settings)  # refuse an exposed API without a token before starting anything
    pace_collector()  # a long-running process: fewer, shorter collections (ingest/gcpace.py)
    run_async(run_service(settings))


@cli.command()
@click.option("--supervised", is_flag=True, hidden=True,
              help="Started by `ingest run`: ignore SIGINT, stop when stdin closes.")
@click.option("--worker-id", default="", hidden=True, help="The id the supervisor knows it by.")
@click.option("--alive-file", default="", hidden=True, help="A file to touch on every heartbeat.")
@click.pass_context
def worker(ctx: click.Context, supervised: bool, worker_id: str, alive_file: str) -> None:
    """Run one arq worker process against the configured Redis (for more machines or cores)."""
    from ingest.daemon import run_worker_forever, worker_code_problem
    from ingest.supervise import CANNOT_START_STATUS, cannot_start_file

    settings = settings_of(ctx)
    problem = worker_code_problem()
    if problem:  # a broken install: say so once and exit, rather than fail every job
        click.echo(f"error: {problem}", err=True)
        if alive_file:
            cannot_start_file(alive_file).write_text(problem, encoding="utf-8")
        sys.exit(CANNOT_START_STATUS)
    run_async(run_worker_forever(settings, worker_id, alive_file, supervised))


def _describe(result: dict[str, Any]) -> str:
    return (f"{result['new']} new, {result['updated']} updated, {result['unchanged']} unchanged "
            f"({result['entries']} entries, feed {result['feed_id']})")


async def _refuse_when_busy(settings: Settings) -> None:
    """Backpressure (#20): say busy, with why, instead of queuing more work."""
    from ingest.deliver.trim import read_busy

    redis = await connect(settings)
    try:
        reason = await read_busy(redis, Keys.for_settings(settings))
    finally:
        await redis.aclose()
    if reason:
        raise Busy(f"busy, nothing queued: {reason}; try again once the consumer groups catch up")


async def _enqueue(settings: Settings, urls: tuple[str, ...], wait: bool, timeout: float) -> int:
    for url in urls:  # a refused URL is said before anything connects (or waits for Redis)
        check_scheme(url, settings)
    await _refuse_when_busy(settings)
    pool = await connect_arq(settings)
    failures = 0
    try:
        jobs = await enqueue_fetch(pool, list(urls), settings)
        for url, job in zip(urls, jobs, strict=True):
            if not wait:
                click.echo(f"{url}: queued as job {job.job_id}")
                continue
            result = await job_outcome(job, url, timeout, pool, Keys.for_settings(settings))
            if result.get("error"):
                where = f"{result['stage']} failed" if result["stage"] in ("fetch", "parse") else url
                click.echo(f"error: {where}: {result['error']}", err=True)
                failures += 1
            else:
                click.echo(f"{url}: {_describe(result)}")
    finally:
        await pool.aclose()
    return 1 if failures else 0


@cli.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--wait", is_flag=True, help="Wait for the jobs; print what each delivered.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait (default: enqueue_wait_timeout).")
@click.pass_context
def enqueue(ctx: click.Context, urls: tuple[str, ...], wait: bool, timeout: float | None) -> None:
    """Fetch URLs once through the normal pipeline (one arq job per URL)."""
    settings = settings_of(ctx)
    code = run_async(_enqueue(settings, urls, wait, timeout or settings.enqueue_wait_timeout))
    sys.exit(code)


async def _stats(settings: Settings) -> dict[str, Any]:
    from ingest.stats import read_snapshot

    redis = await connect(settings)
    try:
        snap = await read_snapshot(redis, Keys.for_settings(settings))
    finally:
        await redis.aclose()
    stats: dict[str, Any] = dict(snap.counters)
    stats.update(stream_length=snap.stream_length, dead_letters=snap.dead_letters,
                 queue_depth=snap.queue_depth)
    return stats


@cli.command()
@click.pass_context
def stats(ctx: click.Context) -> None:
    """Counters: items delivered, fetch and parse errors, stream and dead-letter lengths."""
    for key, value in sorted(run_async(_stats(settings_of(ctx))).items()):
        click.echo(f"{key:16} {value}")


# Command groups that live in their own modules (one stage each).
for _command in (*cli_items.COMMANDS, *cli_feeds.COMMANDS, *cli_dead.COMMANDS, *cli_web.COMMANDS):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="ingest")


if __name__ == "__main__":
    main()
