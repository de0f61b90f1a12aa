"""`ingest dead` (list dead letters) and `ingest dead retry` (put them back); see ingest/deliver/dead.py."""

from __future__ import annotations

from typing import Any

import click
import orjson

from ingest.cli.common import run_async, settings_of
from ingest.deliver.dead import DeadEntry, list_dead, retry_dead
from ingest.keys import Keys
from ingest.redis_conn import connect, connect_arq
from ingest.settings import Settings

__all__ = ["COMMANDS"]

_KINDS = click.Choice(["parse", "job", "sink", "webhook", "subscriber", "group"])


async def _list(settings: Settings, limit: int, kind: str | None) -> list[DeadEntry]:
    redis = await connect(settings)
    try:
        return await list_dead(redis, Keys.for_settings(settings), limit, kind)
    finally:
        await redis.aclose()


@click.group(invoke_without_command=True)
@click.option("--kind", type=_KINDS, help="Only entries of this kind.")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (all fields).")
@click.pass_context
def dead(ctx: click.Context, kind: str | None, limit: int, as_json: bool) -> None:
    """List dead-letter entries (oldest first): what could not be processed, and why."""
    if ctx.invoked_subcommand is not None:
        return
    for entry in run_async(_list(settings_of(ctx), limit, kind)):
        if as_json:
            click.echo(orjson.dumps(entry.as_dict()).decode())
        else:
            where = entry.fields.get("url") or entry.fields.get("group", "")
            item = entry.fields.get("item_id", "")
            line = f"{entry.id}  {entry.kind:10}  {where}  {item}  {entry.error[:100]}"
            click.echo(line.rstrip())


async def _retry(settings: Settings, ids: tuple[str, ...], kind: str | None, limit: int) -> int:
    keys = Keys.for_settings(settings)
    redis = await connect(settings)
    pool = None
    try:
        entries = await list_dead(redis, keys, limit, kind, ids)
        if any(e.kind in ("parse", "job") for e in entries):
            pool = await connect_arq(settings)
        arq: Any = pool
        retried, skipped = await retry_dead(redis, keys, arq, entries)
    finally:
        if pool is not None:
            await pool.aclose()
        await redis.aclose()
    for entry, reason in skipped:
        click.echo(f"skipped {entry.id} ({entry.kind}): {reason}", err=True)
    click.echo(f"retried {retried} of {len(entries)} dead-letter entries")
    return 1 if ids and len(entries) < len(ids) else 0


@dead.command()
@click.argument("ids", nargs=-1)
@click.option("--kind", type=_KINDS, help="Only entries of this kind.")
@click.option("--limit", type=click.IntRange(1, 100000), default=1000, show_default=True)
@click.pass_context
def retry(ctx: click.Context, ids: tuple[str, ...], kind: str | None, limit: int) -> None:
    """Put entries back (the given IDS, else all, oldest first, up to --limit).

    parse/job entries: their URL is enqueued again as a fetch_once job.
    sink/webhook/subscriber entries: the item goes onto that consumer group's
    own retry stream, so only the consumer that failed sees it again.
    """
    code = run_async(_retry(settings_of(ctx), ids, kind, limit))
    ctx.exit(code)


COMMANDS = [dead]
