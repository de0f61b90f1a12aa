"""The shell of the in-process paired benches (bench_mixed_paired, bench_job_paired).

Both run the farm's round 0 then round 1 (every feed changed) in one process on a
private redis-server, the variants taking turns per document, and report CPU µs per
document for each variant against the first. What differs between them is only
the work per document (their `_run`); the arguments, bounds, server, the job's setup,
the walk over the documents and the report are here, so that the two stay comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from bench.farm import FarmSpec, changed_in_round, feed_body

__all__ = ["JobSetup", "documents", "farm_arguments", "job_setup", "on_private_redis", "print_cpu"]

T = TypeVar("T")


def farm_arguments(description: str | None, default_feeds: int,
                   variants: Sequence[str]) -> tuple[argparse.Namespace, FarmSpec]:
    """The command line (bounded: every load loop is) and the farm whose every feed changes in round 1."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--feeds", type=int, default=default_feeds, help="every feed changes in round 1")
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--new-items", type=int, default=3)
    args = p.parse_args()
    if not (len(variants) <= args.feeds <= 5000 and 0 < args.items <= 200):
        p.error(f"bounds: --feeds {len(variants)}..5000, --items 1..200")
    return args, FarmSpec(feeds=args.feeds, items=args.items, changed=1.0, new_items=args.new_items)


class JobSetup(NamedTuple):
    """What a worker's job is handed besides its Redis clients, as a worker builds it."""

    settings: Any  # ingest.settings.Settings
    keys: Any  # ingest.keys.Keys
    options: Any  # workers.normalize.record.NormalizeOptions
    limits: Any  # workers.limits.Limits
    session: Any  # aiohttp.ClientSession (the article fetcher's; closed by the caller)


def job_setup() -> JobSetup:
    """Loopback-only settings under the `bench` namespace, and what follows from them."""
    from ingest.keys import Keys
    from ingest.poll.fetch import new_session
    from ingest.settings import Settings
    from workers.limits import Limits
    from workers.normalize.record import NormalizeOptions

    settings = Settings(allow_networks="127.0.0.0/8")
    return JobSetup(settings, Keys("bench"), NormalizeOptions.from_settings(settings),
                    Limits.from_settings(settings), new_session(settings))


def documents(spec: FarmSpec, variants: Sequence[str], base: str) -> Iterator[tuple[int, int, str, Any]]:
    """(round, feed, variant, Fetched) for every feed of round 0, then every feed changed
    in round 1, the variants taking turns in a rotating order, so that each sees the same
    load and the same kind of documents. Feed n's URL is `{base}/feed/{n}.xml`."""
    from ingest.models import Fetched

    for round_ in (0, 1):
        feeds = [n for n in range(spec.feeds) if round_ == 0 or changed_in_round(spec, n, 1)]
        for i, n in enumerate(feeds):
            url = f"{base}/feed/{n}.xml"
            yield (round_, n, variants[(i + i // len(variants)) % len(variants)],
                   Fetched(url, url, 200, {"content-type": "application/xml"}, feed_body(spec, n, round_, base),
                           "2026-01-05T06:00:00Z"))


def on_private_redis(prefix: str, run: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """`run(url)` against a redis-server of its own (no persistence), stopped after."""
    from ingest.embedded import RedisServer

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = RedisServer(Path(tmp) / "redis", Path(tmp) / "redis.sock", appendonly=False)
        server.start()
        try:
            return asyncio.run(run(server.url))
        finally:
            server.stop()


def print_cpu(cpu: Mapping[str, Sequence[float]], variants: Sequence[str], heading: str,
              extra: Callable[[str], str] = lambda name: "") -> None:
    """Per variant: CPU µs per document, mean and median, and the mean against the first variant."""
    first = statistics.mean(cpu[variants[0]])
    print(heading)
    for name in variants:
        values = cpu[name]
        mean = statistics.mean(values)
        print(f"  {name:8s} n={len(values):4d}  mean {1e6 * mean:6.0f}  median {1e6 * statistics.median(values):6.0f}"
              f"  ({100 * (mean / first - 1):+5.1f}% against {variants[0]}){extra(name)}")
