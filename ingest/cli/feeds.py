"""CLI commands for the feed registry: add, remove, enable, feeds, import, export."""

from __future__ import annotations

import hashlib
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import redis.asyncio as aioredis

from ingest.cli.common import run_async, settings_of
from ingest.errors import IngestError
from ingest.keys import Keys
from ingest.models import FeedSpec, Fetched, FetchFailed
from ingest.poll.discover import discover_feeds, looks_like_html
from ingest.poll.enqueue import enqueue_parse
from ingest.poll.fetch import check_scheme, conditional_get, new_session
from ingest.poll.opml import OPMLEntry, OPMLError, read_opml, write_opml
from ingest.poll.registry import add_feed, add_feeds, enable_feed, list_feeds, load_feed, remove_feed
from ingest.redis_conn import connect, connect_arq
from ingest.settings import Settings

__all__ = ["COMMANDS"]


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _register_fetched(
    settings: Settings, redis: aioredis.Redis, url: str, fetched: Fetched,
    interval: float, tags: tuple[str, ...],
) -> tuple[str, bool]:
    """Register a feed we just fetched and hand its body to the workers at once."""
    keys = Keys(settings.namespace)
    feed_id, created = await add_feed(redis, keys, url, interval=interval, tags=tags)
    state = await load_feed(redis, keys, feed_id)
    pool = await connect_arq(settings)
    try:
        spec = FeedSpec(feed_id=feed_id, url=url, title=state.title if state else "",
                        tags=state.tags if state else tags)
        await enqueue_parse(pool, spec, fetched)
    finally:
        await pool.aclose()
    # The body is on its way: the first poll can be conditional and later.
    next_due = time.time() + max(interval or settings.default_interval, settings.min_interval)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.feed(feed_id), mapping={
            "etag": fetched.headers.get("etag", ""),
            "last_modified": fetched.headers.get("last-modified", ""),
            "body_hash": hashlib.blake2b(fetched.body, digest_size=16).hexdigest(),
            "last_status": fetched.status, "last_fetch_at": fetched.fetched_at,
        })
        pipe.zadd(keys.schedule, {feed_id: int(next_due * 1000)})
        await pipe.execute()
    return feed_id, created


async def _add(settings: Settings, url: str, interval: float, tags: tuple[str, ...],
               list_only: bool, force: bool) -> int:
    check_scheme(url, settings)
    keys = Keys(settings.namespace)
    redis = await connect(settings)
    session = new_session(settings)
    try:
        result = await conditional_get(session, url, settings)
        if isinstance(result, FetchFailed):
            if not force:
                raise IngestError(f"{result.error} (not added; --force adds it anyway)")
            feed_id, created = await add_feed(redis, keys, url, interval=interval, tags=tags)
            click.echo(f"{'added' if created else 'already present'}: {feed_id} {url} (fetch failed)")
            return 0
        if not isinstance(result, Fetched):  # pragma: no cover - no validators were sent
            raise IngestError(f"{url}: unexpected 304")
        if looks_like_html(result.body, result.headers.get("content-type", "")):
            found = discover_feeds(result.body, result.final_url)
            if not found:
                raise IngestError(f"{url} is a web page that advertises no feeds")
            for feed in found:
                if list_only:
                    click.echo(f"{feed.url}\t{feed.kind}\t{feed.title}")
                    continue
                feed_id, created = await add_feed(redis, keys, feed.url, interval=interval, tags=tags)
                click.echo(f"{'added' if created else 'already present'}: {feed_id} {feed.url}"
                           f"{'  (' + feed.title + ')' if feed.title else ''}")
            return 0
        if list_only:
            click.echo(f"{url}\tfeed\t")
            return 0
        feed_id, created = await _register_fetched(settings, redis, url, result, interval, tags)
        click.echo(f"{'added' if created else 'already present'}: {feed_id} {url}")
        return 0
    finally:
        await session.close()
        await redis.aclose()


@click.command()
@click.argument("url")
@click.option("--interval", type=click.FloatRange(min=1), default=None,
              help="Seconds between polls (default: adaptive).")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable); items also go to <ns>:items:tag:<tag>.")
@click.option("--list", "list_only", is_flag=True, help="Only list the feeds a web page advertises.")
@click.option("--force", is_flag=True, help="Add even if the first fetch fails.")
@click.pass_context
def add(ctx: click.Context, url: str, interval: float | None, tags: tuple[str, ...],
        list_only: bool, force: bool) -> None:
    """Register a feed (fetched once right away), or the feeds a web page advertises."""
    sys.exit(run_async(_add(settings_of(ctx), url, interval or 0, tags, list_only, force)))


async def _with_redis(settings: Settings, fn: Any, *args: Any) -> Any:
    redis = await connect(settings)
    try:
        return await fn(redis, Keys(settings.namespace), *args)
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


def _feed_row(state: Any, due: float | None) -> dict[str, Any]:
    return {
        "id": state.feed_id, "url": state.url, "title": state.title, "tags": list(state.tags),
        "status": "disabled" if state.disabled_reason else (state.last_status or "new"),
        "last_fetch_at": state.last_fetch_at or None, "next_due_at": _when(due) if due else None,
        "items": state.items, "consecutive_errors": state.consecutive_errors,
        "disabled_reason": state.disabled_reason or None, "last_error": state.last_error or None,
        "interval": state.interval or None,
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.pass_context
def feeds(ctx: click.Context, as_json: bool) -> None:
    """Registered feeds: url, title, status, last fetch, next due, items, errors, disabled reason."""
    rows = [_feed_row(s, d) for s, d in run_async(_with_redis(settings_of(ctx), list_feeds))]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    header = (f"{'id':16}  {'status':8}  {'last fetch':20}  {'next due':20}  {'items':>6}  {'errs':>4}  "
              "url / title / disabled reason")
    click.echo(header)
    for r in rows:
        extra = f"  [{r['disabled_reason']}]" if r["disabled_reason"] else ""
        click.echo(f"{r['id']:16}  {str(r['status'])[:8]:8}  {(r['last_fetch_at'] or '-')[:19]:20}  "
                   f"{(r['next_due_at'] or '-'):20}  {r['items']:>6}  {r['consecutive_errors']:>4}  "
                   f"{r['url']}  {r['title']}{extra}")


async def _import(settings: Settings, entries: list[OPMLEntry]) -> dict[str, int]:
    counts = {"added": 0, "already present": 0, "invalid": 0}
    keys = Keys(settings.namespace)
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
