"""CLI commands that read delivered items: `ingest items`, `ingest search`, `ingest subscribe`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from typing import Any

import click
import orjson
from redis.exceptions import RedisError

from ingest.cli.common import run_async, settings_of, until_reader_gone
from ingest.deliver.groups import default_consumer_name
from ingest.deliver.subscribe import ItemFilter, consume_group, live, live_channels, replay
from ingest.errors import RedisUnavailable
from ingest.keys import Keys
from ingest.redis_conn import connect
from ingest.settings import Settings
from ingest.store import open_sink
from ingest.store.base import ItemQuery, parse_time

__all__ = ["COMMANDS"]


async def _items(settings: Settings, query: ItemQuery) -> list[dict[str, Any]]:
    sink = open_sink(settings.effective_storage_url)
    try:
        return await sink.query(query)
    finally:
        await sink.close()


def _time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time") from e


def _print(records: list[dict[str, Any]], as_json: bool) -> None:
    for r in records:
        if as_json:
            click.echo(orjson.dumps(r).decode())
        else:
            when = (r.get("published_at") or "-")[:16]
            click.echo(f"{when:16}  {r['feed_id']}  v{r['version']}  {r.get('title', '')[:80]}")


def _outlet(r: dict[str, Any]) -> str:
    """Who carried an item: the feed's title (else its URL), and the credited agency if other."""
    outlet = str(r.get("feed_title") or r.get("feed_url") or r.get("feed_id"))
    source = r.get("source")
    return f"{outlet} ({source})" if source and source != outlet else outlet


def _print_cluster(cluster_id: str, records: list[dict[str, Any]]) -> None:
    """The copies of one story, first seen first: who had it first, who carried it since."""
    feeds = len({r["feed_id"] for r in records})
    click.echo(f"cluster {cluster_id}: {len(records)} items from {feeds} feeds, first seen first")
    if records and records[0]["id"] != cluster_id:
        click.echo(f"  (the first copy seen, {cluster_id}, is not in storage or not selected)")
    for n, r in enumerate(records, start=1):
        role = "first" if r["id"] == cluster_id else "copy"
        when = (r.get("published_at") or "-")[:16]
        click.echo(f"{n:3}  {role:5}  {when:16}  {_outlet(r)[:30]:30}  {r['feed_id']}  "
                   f"v{r['version']}  {r.get('title', '')[:60]}")


_filters = [
    click.option("--feed", "feed_id", help="Only items of this feed id."),
    click.option("--since", callback=_time_option,
                 help="Published (else fetched) at or after; ISO 8601, "
                      "UTC unless an offset is given."),
    click.option("--until", callback=_time_option, help="Published (else fetched) before."),
    click.option("--lang", "language", help="Language tag; 'de' also matches 'de-DE'."),
    click.option("--cluster", "cluster_id",
                 help="Only copies of this story (cluster id); `items` lists them first seen first."),
    click.option("--limit", type=click.IntRange(1, 100000), default=20, show_default=True),
    click.option("--json", "as_json", is_flag=True, help="One JSON record a line."),
]


def _with_filters(fn: Any) -> Any:
    for option in reversed(_filters):
        fn = option(fn)
    return fn


@click.command()
@_with_filters
@click.pass_context
def items(ctx: click.Context, /, as_json: bool, **filters: Any) -> None:
    """List stored items, newest first.

    With --cluster: the copies of one story in the order they were first seen,
    the first copy (whose id is the cluster id) and its outlet first.
    """
    cluster_id = filters["cluster_id"]
    query = ItemQuery(**filters, order="first_seen" if cluster_id else "newest")
    records = run_async(_items(settings_of(ctx), query))
    if cluster_id and not as_json:
        _print_cluster(cluster_id, records)
    else:
        _print(records, as_json)


@click.command()
@click.argument("text")
@_with_filters
@click.pass_context
def search(ctx: click.Context, /, text: str, as_json: bool, **filters: Any) -> None:
    """Full-text search of stored items (title, summary, text), best match first.

    Every word must occur (SQLite FTS5 / PostgreSQL tsvector, 'simple' rules:
    no stemming, so search the word as written).
    """
    records = run_async(_items(settings_of(ctx), ItemQuery(text=text, **filters)))
    _print(records, as_json)


async def _subscribe(settings: Settings, opts: dict[str, Any]) -> None:
    keys = Keys.for_settings(settings)
    f = ItemFilter(feeds=opts["feed"], tags=opts["tag"], langs=opts["lang"])
    out = sys.stdout
    if out is None:  # started with stdout closed (`>&-`): nobody will ever read
        raise BrokenPipeError("stdout is closed")

    def emit(entry_id: str | None, raw: bytes) -> None:
        if entry_id is not None and opts["with_id"]:
            out.write(entry_id + " ")
        out.write(raw.decode())
        out.write("\n")
        out.flush()

    redis = await connect(settings)
    try:
        await _until_reader_gone(_subscribe_on(redis, keys, f, emit, opts, settings.sink_max_attempts))
    except BrokenPipeError:
        raise  # stdout's reader went away (`| head -1`): not Redis; the CLI exits quietly
    except (RedisError, OSError) as e:
        # The group (or --with-id's last id) says where to resume; say what happened.
        raise RedisUnavailable(f"lost the connection to Redis: {e}") from e
    finally:
        await redis.aclose()


async def _until_reader_gone(work: Coroutine[Any, Any, None]) -> None:
    """Run `work`; if stdout's reader goes away first, stop it and raise BrokenPipeError."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_reader_gone(sys.stdout.fileno()))
    try:
        await asyncio.wait([task, watcher], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    if not task.done() or task.cancelled():
        raise BrokenPipeError("stdout's reader went away")
    task.result()  # the work's own outcome (or exception)


async def _subscribe_on(redis: Any, keys: Keys, f: ItemFilter, emit: Any,
                        opts: dict[str, Any], max_attempts: int) -> None:
    """The mode the options ask for (see ingest/deliver/subscribe.py)."""
    if opts["group"]:
        consumer = opts["consumer"] or default_consumer_name()
        click.echo(f"consuming {keys.items_stream} as {consumer} in group {opts['group']}",
                   err=True)
        await consume_group(redis, keys, opts["group"], consumer, f, emit,
                            start=opts["start"] or "$", follow=not opts["no_follow"],
                            claim_idle_ms=int(opts["claim_idle"] * 1000),
                            max_attempts=max_attempts)
    elif opts["start"] is not None:
        click.echo(f"replaying {keys.items_stream} after {opts['start']}", err=True)
        await replay(redis, keys, opts["start"], f, emit, follow=not opts["no_follow"])
    elif opts["events"]:
        await live(redis, [keys.events_channel], ItemFilter(), emit,
                   lambda: click.echo(f"subscribed to {keys.events_channel}", err=True))
    else:
        channels = live_channels(keys, f)
        await live(redis, channels, f, emit,
                   lambda: click.echo(f"subscribed to {' '.join(channels)}", err=True))


@click.command()
@click.option("--from", "start", metavar="ID|0|$",
              help="Replay the stream after this entry id (0: all, $: only new), then follow it.")
@click.option("--group",
              help="Consume durably in this consumer group (acknowledged after printing).")
@click.option("--consumer", help="Consumer name within --group (default: host-pid).")
@click.option("--claim-idle", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="With --group: seconds before a dead consumer's pending entries are claimed.")
@click.option("--feed", multiple=True, help="Only items of this feed id (repeatable).")
@click.option("--tag", multiple=True, help="Only items of feeds with this tag (repeatable).")
@click.option("--lang", multiple=True, help="Only items in this language; 'de' matches 'de-DE'.")
@click.option("--events", is_flag=True, help="Print feed state events (<ns>:events) instead.")
@click.option("--no-follow", is_flag=True, help="With --from/--group: stop when caught up.")
@click.option("--with-id", is_flag=True, help="With --from/--group: print 'ENTRY_ID JSON'.")
@click.pass_context
def subscribe(ctx: click.Context, /, **opts: Any) -> None:
    """Print items as they are delivered, one JSON object a line.

    Without --from or --group: live Pub/Sub (best effort). With --from: replay
    and follow the stream. With --group: durable, acknowledged consumption.
    """
    if opts["consumer"] and not opts["group"]:
        raise click.UsageError("--consumer needs --group")
    run_async(_subscribe(settings_of(ctx), opts))


COMMANDS = [items, search, subscribe]
