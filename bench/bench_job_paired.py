"""A changed document's job CPU with its Redis calls joined (decisions 159, 160) or apart.

One process, one Redis, the farm's round 0 then round 1 (every feed changed, as
bench/bench_mixed_paired.py does); per document the variant changes in a rotating
order, so each sees the same load and the same kind of documents. A job is what
workers/tasks.py runs after the fetch: `process_document`, and the feed's outcome.

  apart    as before: the cluster index's entries written in a round trip of their own
           (`ClusterIndex.assign`), the feed's outcome and `fetches_ok` sent after the
           document (`registry.record_success`: two requests in flight at once)
  piped    apart, but the outcome and `fetches_ok` in one pipeline of their own (one
           write instead of two: the cheapest form of the separate call; not taken)
  outcome  apart + the outcome and `fetches_ok` in the document's last round trip
           (`process_document(note_success=True)`, decision 159)
  joined   + the index's entries in the delivery's round trip
           (`assign_deferred`, `Deliverer.deliver(before=...)`, decision 160)

Reported per variant: this process's CPU µs per job (mean, median) and the writes
to Redis per job (a pipeline is one write: round trips, counted by wrapping the
connection's send; the wrapper costs every variant alike).

    .venv/bin/python bench/bench_job_paired.py --feeds 2000
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.farm import FarmSpec  # noqa: E402
from bench.paired import documents, farm_arguments, job_setup, on_private_redis, print_cpu  # noqa: E402

VARIANTS = ("apart", "piped", "outcome", "joined")


async def _run(url: str, spec: FarmSpec) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection

    from ingest.deliver.publish import Deliverer
    from ingest.models import DeliveryResult, FeedSpec, Fetched, Item, feed_id_for_url
    from ingest.poll.registry import add_feeds, record_success, success_call
    from ingest.redis_conn import ScriptCall, pack_with_hiredis, run_script
    from ingest.urls import canonical_url
    from workers.article.fetch import ArticleFetcher
    from workers.clusters.index import ClusterIndex
    from workers.pipeline import process_document

    class WrittenApart(ClusterIndex):
        """The index as before decision 160: its entries in a round trip of their own."""

        async def assign_deferred(self, items: Sequence[Item],
                                  now: float | None = None) -> tuple[list[Item], ScriptCall | None]:
            assigned, write = await super().assign_deferred(items, now)
            if write is not None:
                await run_script(self.redis, write)
            return assigned, None

    async def piped_success(result: DeliveryResult, title: str, fetched: Fetched) -> None:
        script, script_keys, args = success_call(keys, result, title, fetched.fetched_at, fetched.status)
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command("EVALSHA", success_sha, len(script_keys), *script_keys, *args)
            pipe.hincrby(keys.stats, "fetches_ok", 1)
            await pipe.execute()

    writes = [0]
    send = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        writes[0] += 1
        await send(self, command, check_health)

    settings, keys, options, limits, session = job_setup()
    client = aioredis.Redis.from_url(url)
    await pack_with_hiredis(client)  # as a worker's client (workers/context.py)
    await client.flushall()
    success_sha = await client.script_load(success_call(keys, DeliveryResult("", "", 0, 0, 0, 0), "", "", 0)[0])
    deliverer = Deliverer(client, keys, settings.stream_xadd_cap, settings.item_retention_seconds,
                          settings.max_versions, settings.stream_record)
    joined_index = ClusterIndex.from_settings(client, keys, settings)
    apart_index = WrittenApart.from_settings(client, keys, settings)
    articles = ArticleFetcher(session, client, keys, settings)
    base = "http://127.0.0.1:1"
    urls = [f"{base}/feed/{n}.xml" for n in range(spec.feeds)]
    await add_feeds(client, keys, [(u, "", 600.0, ()) for u in urls])  # registered: the outcome is written
    specs = [FeedSpec(feed_id_for_url(canonical_url(u) or u), u) for u in urls]
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    trips: dict[str, list[int]] = {name: [] for name in VARIANTS}
    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        for round_, n, name, fetched in documents(spec, VARIANTS, base):
            index = joined_index if name == "joined" else apart_index
            writes[0] = 0
            started = time.process_time()
            processed = await process_document(deliverer, specs[n], fetched, index, options, limits, articles,
                                               note_success=name != "apart")
            if name == "apart":
                await record_success(client, keys, processed.result, processed.title, fetched.fetched_at,
                                     fetched.status)
            elif name == "piped":
                await piped_success(processed.result, processed.title, fetched)
            if round_:
                cpu[name].append(time.process_time() - started)
                trips[name].append(writes[0])
    finally:
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        await session.close()
        await client.aclose()
    return cpu, trips


def main() -> None:
    args, spec = farm_arguments(__doc__.splitlines()[0] if __doc__ else None, 2000, VARIANTS)
    cpu, trips = on_private_redis("bench-job-", lambda url: _run(url, spec))
    print_cpu(cpu, VARIANTS, f"{args.feeds} changed documents ({args.new_items} new items among {args.items}), "
              f"worker CPU µs per job",
              lambda name: f"  Redis writes per job {statistics.mean(trips[name]):5.2f}")


if __name__ == "__main__":
    main()
