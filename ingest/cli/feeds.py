"""CLI commands for the feed registry: add, remove, enable, feeds, import, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
import redis.asyncio as aioredis

from ingest.cli.common import run_async, settings_of
from ingest.errors import IngestError
from ingest.keys import Keys
from ingest.poll.adding import AddRequest, NotAFeed, add_from_url
from ingest.poll.fetch import check_scheme, new_session
from ingest.poll.manage import feed_row
from ingest.poll.opml import OPMLEntry, OPMLError, read_opml, write_opml
from ingest.poll.registry import add_feeds, enable_feed, list_feeds, remove_feed
from ingest.redis_conn import connect, connect_arq
from ingest.settings import Settings

__all__ = ["COMMANDS"]


async def _add(settings: Settings, req: AddRequest) -> int:
    redis = await connect(settings)
    pool = await connect_arq(settings)
    session = new_session(settings)
    try:
        try:
            found = await add_from_url(settings, redis, pool, session, req)
        except NotAFeed as e:
            raise IngestError(str(e).replace("force adds", "--force adds")) from e
    finally:
        await session.close()
        await pool.aclose()
        await redis.aclose()
    for feed in found:
        if req.list_only:
            click.echo(f"{feed.url}\t{feed.kind}\t{feed.title}")
            continue
        title = f"  ({feed.title})" if feed.title else ""
        note = f" ({feed.note})" if feed.note else ""
        click.echo(f"{'added' if feed.created else 'already present'}: {feed.feed_id} {feed.url}{title}{note}")
    return 0


@click.command()
@click.argument("url")
@click.option("--interval", type=click.FloatRange(min=1), default=None,
              help="Seconds between polls (default: adaptive).")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable); items also go to <ns>:items:tag:<tag>.")
@click.option("--list", "list_only", is_flag=True, help="Only list the feeds a web page advertises.")
@click.option("--force", is_flag=True, help="Add even if the first fetch fails.")
@click.option("--full-text", "full_text", type=click.Choice(["off", "auto", "always"]), default=None,
              help="Fetch article pages for this feed's items (default: the full_text setting).")
@click.pass_context
def add(ctx: click.Context, url: str, interval: float | None, tags: tuple[str, ...],
        list_only: bool, force: bool, full_text: str | None) -> None:
    """Register a feed (fetched once right away), or the feeds a web page advertises."""
    req = AddRequest(url=url, interval=interval or 0, tags=tags, list_only=list_only, force=force,
                     full_text=full_text or "")
    sys.exit(run_async(_add(settings_of(ctx), req)))


async def _with_redis(settings: Settings, fn: Any, *args: Any) -> Any:
    redis = await connect(settings)
    try:
        return await fn(redis, Keys.for_settings(settings), *args)
    finally:
        await redis.aclose()


@click.command()
@click.argument("url_or_id")
@click.pass_context
def remove(ctx: click.Context, url_or_id: str) -> None:
    """Stop polling a feed and forget it (its stored items stay)."""
    feed_id = run_async(_with_redis(settings_of(ctx), remove_feed, url_or_id))
    if feed_id is None:
        click.echo(f"error: no feed {url_or_id}", err=True)
        sys.exit(1)
    click.echo(f"removed: {feed_id}")


async def _enable(redis: aioredis.Redis, keys: Keys, url_or_id: str) -> str:
    from ingest.poll.registry import find_feed_id

    feed_id = await find_feed_id(redis, keys, url_or_id)
    if feed_id is None:
        raise IngestError(f"no feed {url_or_id}")
    changed = await enable_feed(redis, keys, feed_id)
    return f"{'enabled' if changed else 'already enabled'}: {feed_id}"


@click.command()
@click.argument("url_or_id")
@click.pass_context
def enable(ctx: click.Context, url_or_id: str) -> None:
    """Re-enable a disabled feed (it is polled at once)."""
    click.echo(run_async(_with_redis(settings_of(ctx), _enable, url_or_id)))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.pass_context
def feeds(ctx: click.Context, as_json: bool) -> None:
    """Registered feeds: url, title, status, last fetch, next due, items, errors, disabled reason."""
    rows = [feed_row(s, d) for s, d in run_async(_with_redis(settings_of(ctx), list_feeds))]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    header = (f"{'id':16}  {'status':8}  {'last fetch':20}  {'next due':20}  {'items':>6}  {'errs':>4}  "
              "url / title / disabled reason")
    click.echo(header)
    for r in rows:
        extra = f"  [{r['disabled_reason']}]" if r["disabled_reason"] else ""
        if r["hub"]:
            extra += (f"  [pushed by {r['hub']} until {r['push_lease_expires_at']}, last push "
                      f"{r['last_push_at'] or '-'}]" if r["pushed"] else f"  [hub {r['hub']}, not pushed]")
        click.echo(f"{r['id']:16}  {str(r['status'])[:8]:8}  {(r['last_fetch_at'] or '-')[:19]:20}  "
                   f"{(r['next_due_at'] or '-'):20}  {r['items']:>6}  {r['consecutive_errors']:>4}  "
                   f"{r['url']}  {r['title']}{extra}")


async def _import(settings: Settings, entries: list[OPMLEntry]) -> dict[str, int]:
    counts = {"added": 0, "already present": 0, "invalid": 0}
    keys = Keys.for_settings(settings)
    valid: list[OPMLEntry] = []
    for entry in entries:
        try:
            check_scheme(entry.url, settings)
        except IngestError as e:
            counts["invalid"] += 1
            click.echo(f"invalid: {e}", err=True)
            continue
        valid.append(entry)
    redis = await connect(settings)
    try:
        created = await add_feeds(redis, keys, [(e.url, e.title, e.interval, e.tags) for e in valid])
    finally:
        await redis.aclose()
    counts["added"] = sum(created)
    counts["already present"] = len(created) - counts["added"]
    return counts


@click.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def import_(ctx: click.Context, file: str) -> None:
    """Register every feed of an OPML file; prints added / already present / invalid."""
    try:
        entries = read_opml(Path(file).read_bytes())
    except OPMLError as e:
        click.echo(f"error: {file}: {e}", err=True)
        sys.exit(1)
    counts = run_async(_import(settings_of(ctx), entries))
    click.echo(f"{counts['added']} added, {counts['already present']} already present, "
               f"{counts['invalid']} invalid")


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (default: stdout).")
@click.pass_context
def export(ctx: click.Context, output: str | None) -> None:
    """Every registered feed as OPML 2.0 (which `ingest import` reads back)."""
    listed = run_async(_with_redis(settings_of(ctx), list_feeds))
    text = write_opml(OPMLEntry(s.url, s.title, s.tags, s.interval) for s, _ in listed)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


COMMANDS = [add, remove, enable, feeds, import_, export]
