"""Memory at scale: `ingest run` with 100,000 registered feeds, idle and polling them all.

The farm (bench/farm.py, small feeds: one item of ~600 bytes each) serves
--feeds feeds; they are imported from its OPML with `ingest import`, as a
user would, into a private redis-server; then `ingest run` starts with
nothing due (idle), and then every feed is made due at once and polled for
--seconds (the first poll of each: a 200 and a parse job each). The RSS of
every process of the service is sampled from /proc twice a second; the peak
per process kind is printed, with the polls done meanwhile. Issue 9 asks
for under 200 MB at 100,000 feeds.

Run: .venv/bin/python bench/bench_scale.py [--feeds 100000] [--seconds 120]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstat import describe_tree  # noqa: E402
from bench.service import Service  # noqa: E402

BENCH = Path(__file__).resolve().parent


def sample(service: Service, seconds: float, peaks: dict[str, float]) -> float:
    """Sample RSS for `seconds`; return the service's current total RSS (MiB) at the end."""
    assert service.proc is not None
    deadline = time.monotonic() + seconds
    total = 0.0
    while True:
        infos = describe_tree(service.proc.pid)
        total = sum(i.rss_mib for i in infos)
        for info in infos:
            kind = "ingest run (main)" if info.pid == service.proc.pid else "worker / child"
            peaks[kind] = max(peaks.get(kind, 0.0), info.rss_mib)
        peaks["service total"] = max(peaks.get("service total", 0.0), total)
        if time.monotonic() >= deadline:
            return total
        time.sleep(0.5)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--feeds", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=120.0, help="how long to poll with every feed due")
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=None, help="`ingest run --workers N`, when supported")
    args = p.parse_args()
    farm = subprocess.Popen([sys.executable, str(BENCH / "farm.py"), "--feeds", str(args.feeds), "--items", "1",
                             "--item-bytes", "600"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert farm.stdout is not None
    port = int(farm.stdout.readline())
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            service = Service(Path(tmp), args.workers, "WARNING")
            service.start_redis()
            try:
                opml = Path(tmp) / "farm.opml"
                subprocess.run(["curl", "-s", "-o", str(opml), f"http://127.0.0.1:{port}/opml"], check=True)
                t0 = time.monotonic()
                print(f"import: {service.import_opml(opml)} in {time.monotonic() - t0:.0f} s", flush=True)
                redis_after_import = service.used_memory()
                t0 = time.monotonic()
                service.start()
                print(f"ingest run ready in {time.monotonic() - t0:.1f} s", flush=True)
                peaks: dict[str, float] = {}
                idle = sample(service, args.idle_seconds, peaks)
                print(f"idle, {args.feeds:,} feeds registered: service RSS {idle:.1f} MiB", flush=True)
                polls0 = service.polls()
                service._push_schedule(0)
                busy = sample(service, args.seconds, peaks)
                polls = service.polls() - polls0
                print(f"all due, {args.seconds:.0f} s: {polls:,} polls ({polls / args.seconds:,.0f}/s); "
                      f"service RSS now {busy:.1f} MiB; stats {service.stats()}")
                print("peak RSS (MiB): " + "; ".join(f"{k} {v:.1f}" for k, v in peaks.items()))
                print(f"redis used_memory: {redis_after_import / 2**20:.1f} MiB after import, "
                      f"{service.used_memory() / 2**20:.1f} MiB at the end")
            finally:
                service.stop()
    finally:
        farm.kill()
        farm.wait()


if __name__ == "__main__":
    main()
