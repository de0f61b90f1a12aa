"""`ingest api` (the HTTP server alone), `ingest poll` (poll now), `ingest status` (the status page as text)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import click

from ingest.cli.common import run_async, settings_of
from ingest.errors import IngestError, SettingsError
from ingest.keys import Keys
from ingest.poll.manage import poll_now
from ingest.poll.registry import find_feed_id, load_feed
from ingest.redis_conn import connect
from ingest.settings import Settings

__all__ = ["COMMANDS", "check_listen"]


def check_listen(settings: Settings) -> None:
    """Exit 2 with the reason when the server may not listen where it is asked to."""
    from ingest.web.access import check_exposure, parse_listen

    address = parse_listen(settings.listen)
    if address is None:
        return
    try:
        check_exposure(address[0], settings.api_token)
    except SettingsError as e:
        click.echo(f"configuration error: {e}", err=True)
        sys.exit(2)


async def _serve_alone(settings: Settings) -> None:
    from ingest.web.server import start_server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = await start_server(settings)
    assert started is not None
    runner, port = started
    host = settings.listen.rpartition(":")[0]
    click.echo(f"serving http://{host}:{port}/ (status page), /api/v1/, /metrics", err=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command()
@click.pass_context
def api(ctx: click.Context) -> None:
    """Serve the HTTP API, status page and metrics alone, on `listen` (INGEST_LISTEN)."""
    settings = settings_of(ctx)
    if not settings.listen.strip():
        click.echo("configuration error: setting 'listen' is empty: nothing to serve", err=True)
        sys.exit(2)
    check_listen(settings)
    run_async(_serve_alone(settings))


async def _poll(settings: Settings, feed: str | None) -> str:
    keys = Keys.for_settings(settings)
    redis = await connect(settings)
    try:
        if feed is None:
            count = await poll_now(redis, keys, None, time.time())
            return f"{count} feeds due now"
        feed_id = await find_feed_id(redis, keys, feed)
        if feed_id is None:
            raise IngestError(f"no feed {feed}")
        state = await load_feed(redis, keys, feed_id)
        if state is not None and state.disabled_reason:
            raise IngestError(f"feed {feed_id} is disabled ({state.disabled_reason}); `ingest enable` it first")
        if not await poll_now(redis, keys, [feed_id], time.time()):
            raise IngestError(f"feed {feed_id} is being fetched right now")
        return f"due now: {feed_id}"
    finally:
        await redis.aclose()


@click.command()
@click.argument("feed", required=False)
@click.option("--all", "all_feeds", is_flag=True, help="Every enabled feed.")
@click.pass_context
def poll(ctx: click.Context, feed: str | None, all_feeds: bool) -> None:
    """Poll a feed (id or URL), or --all, now: the running pollers take it within a second."""
    if bool(feed) == all_feeds:
        raise click.UsageError("give a FEED (id or URL) or --all")
    click.echo(run_async(_poll(settings_of(ctx), feed)))


async def _status(settings: Settings) -> str:
    from ingest.web.status import gather_status, status_text

    redis = await connect(settings)
    try:
        return status_text(await gather_status(redis, Keys.for_settings(settings)))
    finally:
        await redis.aclose()


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """The status page in the terminal: feeds by state, failing feeds, items per minute, queue, dead letters."""
    click.echo(run_async(_status(settings_of(ctx))))


COMMANDS = [api, poll, status]
