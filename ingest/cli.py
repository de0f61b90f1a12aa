"""The `ingest` command line: thin entry points over the modules of this package.

Every command reads the same Settings (config/default.toml < --config FILE <
INGEST_* environment). Errors this service raises on purpose (IngestError)
print one clear line and exit 1; bad settings exit 2.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
import orjson

from ingest import __version__
from ingest.errors import IngestError, SettingsError
from ingest.fetch import check_scheme
from ingest.keys import Keys
from ingest.logs import configure_logging
from ingest.redis_conn import connect, connect_arq
from ingest.settings import Settings, load_settings
from ingest.sinks import open_sink
from ingest.sinks.base import ItemQuery

__all__ = ["main"]

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except IngestError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--no-workers", is_flag=True, help="Do not run arq workers here (run `ingest worker`).")
@click.pass_context
def run(ctx: click.Context, no_workers: bool) -> None:
    """Run the service: embedded Redis (if no redis_url), workers and the storage sink."""
    import dataclasses

    from ingest.daemon import run_service

    settings = _settings(ctx)
    if no_workers:
        settings = dataclasses.replace(settings, run_workers=False)
    _run(run_service(settings))


@cli.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run an arq worker against the configured Redis (same as `arq workers.settings.WorkerSettings`)."""
    from ingest.daemon import run_worker_forever

    _run(run_worker_forever(_settings(ctx)))


def _describe(result: dict[str, Any]) -> str:
    return (f"{result['new']} new, {result['updated']} updated, {result['unchanged']} unchanged "
            f"({result['entries']} entries, feed {result['feed_id']})")


async def _enqueue(settings: Settings, urls: tuple[str, ...], wait: bool, timeout: float) -> int:
    for url in urls:
        check_scheme(url)  # refuse before anything is queued
    pool = await connect_arq(settings)
    failures = 0
    try:
        jobs = [(url, await pool.enqueue_job("fetch_once", url)) for url in urls]
        for url, job in jobs:
            assert job is not None  # no _job_id given, so arq always enqueues
            if not wait:
                click.echo(f"{url}: queued as job {job.job_id}")
                continue
            try:
                result = await job.result(timeout=timeout, poll_delay=0.05)
            except TimeoutError:
                click.echo(f"error: {url}: no result within {timeout:g} s; is a worker running "
                           "(`ingest run` or `ingest worker`)?", err=True)
                failures += 1
            except Exception as e:  # noqa: BLE001 - the job's own exception, re-raised by arq
                click.echo(f"error: {url}: job failed: {type(e).__name__}: {e}", err=True)
                failures += 1
            else:
                if result.get("error"):
                    click.echo(f"error: {result['stage']} failed: {result['error']}", err=True)
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
    settings = _settings(ctx)
    code = _run(_enqueue(settings, urls, wait, timeout or settings.enqueue_wait_timeout))
    sys.exit(code)


async def _items(settings: Settings, query: ItemQuery) -> list[dict[str, Any]]:
    sink = open_sink(settings.effective_storage_url)
    try:
        return await sink.query(query)
    finally:
        await sink.close()


@cli.command()
@click.option("--feed", "feed_id", help="Only items of this feed id.")
@click.option("--limit", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON record a line.")
@click.pass_context
def items(ctx: click.Context, feed_id: str | None, limit: int, as_json: bool) -> None:
    """List stored items, newest first."""
    records = _run(_items(_settings(ctx), ItemQuery(feed_id=feed_id, limit=limit)))
    for r in records:
        if as_json:
            click.echo(orjson.dumps(r).decode())
        else:
            when = (r.get("published_at") or "-")[:16]
            click.echo(f"{when:16}  {r['feed_id']}  v{r['version']}  {r['title'][:80]}")


async def _subscribe(settings: Settings, feed_id: str | None) -> None:
    keys = Keys(settings.namespace)
    channel = keys.feed_channel(feed_id) if feed_id else keys.items_channel
    redis = await connect(settings)
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(channel)
        click.echo(f"subscribed to {channel}", err=True)
        out = sys.stdout
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            data = message["data"]
            out.write(data.decode() if isinstance(data, bytes) else str(data))
            out.write("\n")
            out.flush()
    finally:
        await pubsub.aclose()
        await redis.aclose()


@cli.command()
@click.option("--feed", "feed_id", help="Only items of this feed id.")
@click.pass_context
def subscribe(ctx: click.Context, feed_id: str | None) -> None:
    """Print items as they are delivered, one JSON object a line (live Pub/Sub)."""
    _run(_subscribe(_settings(ctx), feed_id))


async def _stats(settings: Settings) -> dict[str, Any]:
    keys = Keys(settings.namespace)
    redis = await connect(settings)
    try:
        raw = await redis.hgetall(keys.stats)
        length = await redis.xlen(keys.items_stream)
        dead = await redis.xlen(keys.dead_stream)
    finally:
        await redis.aclose()
    stats: dict[str, Any] = {k.decode(): int(v) for k, v in raw.items()}
    stats.update(stream_length=length, dead_letters=dead)
    return stats


@cli.command()
@click.pass_context
def stats(ctx: click.Context) -> None:
    """Counters: items delivered, fetch and parse errors, stream and dead-letter lengths."""
    for key, value in sorted(_run(_stats(_settings(ctx))).items()):
        click.echo(f"{key:16} {value}")


def main() -> None:
    cli(prog_name="ingest")


if __name__ == "__main__":
    main()
