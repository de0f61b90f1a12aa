"""Changed feeds only (every feed gains 3 items among 30) of two or more trees, interleaved.

The suite's mixed phase is 909 polls answered 304 and 91 changed feeds in about
a second: too short, and too much of it 304s, to compare what a changed feed
costs outside the arq worker's parse (the daemon's 200 fetch, decompression,
hashing, the hand-over to arq; the sink's rows; redis-server's own work). Here
each tree runs as the suite runs ingest (`bench/service.py`, `PYTHONPATH` at the
tree), all on one farm; after one cold phase each, the farm's rounds from 2 on
change every feed (`--new-items` new items each), and each round is polled by
every tree, in turns (A B, B A, ...), so load from elsewhere falls on both alike.

Reported per tree, median over rounds (min-max): CPU µs per changed feed of
`ingest run` itself (poller and sink), of its whole process tree (with the arq
workers) and of its redis-server; then Redis commands per changed feed (INFO
commandstats: calls and server µs).

    .venv/bin/python bench/bench_changed.py --tree base=/work/base-tree --tree new=. --rounds 6
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
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--new-items", type=int, default=3)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--profile", type=Path, help="py-spy the last tree's `ingest run` (without its workers) "
                   "during its rounds (collapsed stacks; bench/stacks.py reads them)")
    args = p.parse_args()
    trees = [(name, Path(path)) for name, path in (t.split("=", 1) for t in args.tree)]
    farm = Farm(argparse.Namespace(feeds=args.feeds, items=args.items, changed=0.0, new_items=args.new_items,
                                   latency_ms=0.0, error_rate=0.0, full_text=None))
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in trees}
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
                farm.set_round(2 + r)  # from round 2 on, every feed gains items
                order = trees if r % 2 == 0 else trees[::-1]
                for name, _ in order:
                    service = services[name]
                    assert service.proc is not None
                    output = args.profile.with_name(f"{args.profile.name}.{r}") \
                        if args.profile and name == trees[-1][0] else None
                    with profiled(service.proc.pid, output, gil=False):
                        main0 = cpu_seconds([service.proc.pid])
                        result = service.phase(args.feeds * args.new_items, 300)
                    own = cpu_seconds([service.proc.pid]) - main0
                    feeds = max(result.feeds, 1)
                    row = (1e6 * own / feeds, 1e6 * result.cpu_service / feeds, 1e6 * result.cpu_redis / feeds)
                    figures[name].append(row)
                    print(f"round {r + 1} {name}: {result.entries} stored in {result.seconds:.1f} s; CPU us per "
                          f"changed feed: ingest run {row[0]:,.0f}, service {row[1]:,.0f}, redis {row[2]:,.0f}",
                          flush=True)
            print_commands_per(services, before, args.rounds * args.feeds, "changed feed")
        finally:
            for service in services.values():
                service.stop()
            farm.stop()
    if args.profile:
        join_profile(args.profile)
    print(f"\n{args.feeds} feeds changed per round ({args.new_items} new items among {args.items}), "
          f"{args.rounds} rounds each, interleaved; CPU us per changed feed, median (min-max)")
    print("| tree | ingest run (poller, sink) | whole service | redis-server | service + redis |")
    print("| --- | --- | --- | --- | --- |")
    for name, rows in figures.items():
        cols = list(zip(*rows, strict=True))
        total = [s + r for _, s, r in rows]
        print(f"| {name} | " + " | ".join(spread(list(c)) for c in cols) + f" | {spread(total)} |")


if __name__ == "__main__":
    main()
