"""Warm polls (every feed answered 304) of two or more trees, interleaved, on one farm.

The suite's warm phase lasts a fraction of a second for 1,000 feeds, too short
to compare two versions of the poller on a busy machine. Here each tree runs
as the suite runs ingest (`bench/service.py`: `ingest import`, `ingest run`
with its own redis-server and SQLite sink, `PYTHONPATH` pointing at the tree),
all on one farm (`bench/farm.py`); after one cold phase each, the warm phase
is repeated `--rounds` times, the trees taking turns (A B, B A, A B, ...), so
that load from elsewhere on the machine falls on both alike.

Reported per tree, median over rounds (min-max): feeds/s, CPU per poll of
`ingest run` itself (the poller's event loop), of its whole process tree, and
of its redis-server.

    .venv/bin/python bench/bench_warm.py --tree base=/tmp/old-tree --tree new=.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.interleave import join_profile, print_commands_per, profiled, spread, start_tree  # noqa: E402
from bench.procstat import cpu_seconds  # noqa: E402
from bench.service import Service  # noqa: E402
from bench.suite import Farm  # noqa: E402

__all__ = ["main"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tree", action="append", required=True, help="NAME=DIR (repeat; DIR holds ingest/)")
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=5, help="items per feed (only the cold phase reads them)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--profile", type=Path, help="py-spy the last tree's `ingest run` during its warm rounds "
                   "(GIL-holding samples, collapsed stacks; bench/stacks.py reads them)")
    args = p.parse_args()
    trees = [(name, Path(path)) for name, path in (t.split("=", 1) for t in args.tree)]
    farm = Farm(argparse.Namespace(feeds=args.feeds, items=args.items, changed=0.0, new_items=0,
                                   latency_ms=0.0, error_rate=0.0, full_text=None))
    figures: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _ in trees}
    services: dict[str, Service] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            farm.set_round(0)
            for name, tree in trees:
                (Path(tmp) / name).mkdir()
                services[name] = service = start_tree(tree, Path(tmp) / name, farm)
                cold = service.phase(args.feeds * args.items, 600)
                print(f"{name}: cold {cold.entries / cold.seconds:,.0f} entries/s", flush=True)
            before = {name: service.commandstats() for name, service in services.items()}
            for r in range(args.rounds):
                order = trees if r % 2 == 0 else trees[::-1]
                for name, _ in order:
                    service = services[name]
                    assert service.proc is not None
                    output = args.profile.with_name(f"{args.profile.name}.{r}") \
                        if args.profile and name == trees[-1][0] else None
                    with profiled(service.proc.pid, output, gil=True):
                        main0 = cpu_seconds([service.proc.pid])
                        result = service.phase(0, 120)
                    own = cpu_seconds([service.proc.pid]) - main0
                    polls = max(result.feeds, 1)
                    figures[name].append((result.feeds / result.seconds, 1e6 * own / polls,
                                          1e6 * result.cpu_service / polls, 1e6 * result.cpu_redis / polls))
                    print(f"round {r + 1} {name}: {result.feeds / result.seconds:7,.0f} feeds/s, CPU us per poll: "
                          f"ingest run {1e6 * own / polls:4.0f}, service {1e6 * result.cpu_service / polls:4.0f}, "
                          f"redis {1e6 * result.cpu_redis / polls:4.0f}", flush=True)
            print_commands_per(services, before, args.rounds * args.feeds, "poll")
        finally:
            for service in services.values():
                service.stop()
            farm.stop()
    if args.profile:
        join_profile(args.profile)
    print(f"\n{args.feeds} feeds, {args.rounds} warm rounds each, interleaved; median (min-max)")
    print("| tree | feeds/s | CPU us/poll, ingest run | whole service | redis-server | service + redis |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, rows in figures.items():
        cols = list(zip(*rows, strict=True))
        total = [s + r for _, _, s, r in rows]
        print(f"| {name} | " + " | ".join(spread(list(c)) for c in cols) + f" | {spread(total)} |")


if __name__ == "__main__":
    main()
