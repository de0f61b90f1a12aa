"""CLI commands that read delivered items: `ingest items`, `ingest subscribe`."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from ingest.cli_common import run_async, settings_of
from ingest.keys import Keys
from ingest.redis_conn import connect
from ingest.settings import Settings
from ingest.sinks import open_sink
from ingest.sinks.base import ItemQuery

__all__ = ["COMMANDS"]


async def _items(settings: Settings, query: ItemQuery) -> list[dict[str, Any]]:
    sink = open_sink(settings.effective_storage_url)
    try:
        return await sink.query(query)
    finally:
        await sink.close()


@click.command()
@click.option("--feed", "feed_id", help="Only items of this feed id.")
@click.option("--limit", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON record a line.")
@click.pass_context
def items(ctx: click.Context, feed_id: str | None, limit: int, as_json: bool) -> None:
    """List stored items, newest first."""
    records = run_async(_items(settings_of(ctx), ItemQuery(feed_id=feed_id, limit=limit)))
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


@click.command()
@click.option("--feed", "feed_id", help="Only items of this feed id.")
@click.pass_context
def subscribe(ctx: click.Context, feed_id: str | None) -> None:
    """Print items as they are delivered, one JSON object a line (live Pub/Sub)."""
    run_async(_subscribe(settings_of(ctx), feed_id))


COMMANDS = [items, subscribe]
