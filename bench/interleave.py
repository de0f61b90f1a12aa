"""What the tree-against-tree benches share (bench_warm.py, bench_changed.py).

Each runs two or more trees as the suite runs ingest, on one farm, taking turns
round by round; these are the pieces that do not depend on what a round asks of
the service: starting a tree, py-spy on one round, Redis command statistics per
unit of work, and the median (min-max) cells of the final table.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from bench.service import Service, commands_since
from bench.suite import Farm

__all__ = ["join_profile", "print_commands_per", "profiled", "spread", "start_tree"]


def start_tree(tree: Path, tmp: Path, farm: Farm) -> Service:
    """`ingest import` the farm and `ingest run` from `tree` (its own redis-server and sink)."""
    saved, cwd = os.environ.get("PYTHONPATH"), Path.cwd()
    # `ingest import` and `ingest run` import this tree: `python -m` puts the working
    # directory first on sys.path, then comes PYTHONPATH.
    os.environ["PYTHONPATH"] = str(tree.resolve())
    os.chdir(tree)
    try:
        service = Service(tmp, None)
        service.start_redis()
        service.import_opml(farm.opml(tmp / "farm.opml"))
        service.start()
    finally:
        os.chdir(cwd)
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return service


@contextlib.contextmanager
def profiled(pid: int, output: Path | None, gil: bool) -> Iterator[None]:
    """py-spy on `pid` for the block, collapsed stacks to `output` (nothing when None);
    `gil`: only samples holding the GIL (the event loop's own work)."""
    if output is None:
        yield
        return
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
         *(["--gil"] if gil else []), "--rate", "500", "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def join_profile(profile: Path) -> None:
    """The rounds' stack files (`profile`.N) joined into `profile`, the parts removed."""
    parts = sorted(profile.parent.glob(profile.name + ".*"))
    profile.write_text("".join(part.read_text() for part in parts))
    for part in parts:
        part.unlink()


def print_commands_per(services: Mapping[str, Service], before: Mapping[str, dict[str, tuple[int, int]]],
                       units: int, unit: str) -> None:
    """Per tree: each Redis command's calls and server µs per unit since `before`, the
    commands under one call per hundred units left out."""
    for name, service in services.items():
        ran = commands_since(before[name], service.commandstats())
        print(f"{name}: Redis commands per {unit} (calls, server us): " + ", ".join(
            f"{cmd} {calls / units:.2f} {usec / units:.1f}"
            for cmd, (calls, usec) in sorted(ran.items()) if calls >= units / 100))


def spread(values: list[float]) -> str:
    """A table cell: the median, then (min-max)."""
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"
