"""The SQLite sink alone: rows/s and CPU per stored row of two or more trees, alternating.

The cold phase stores every farm entry once; this writes the same normalized
records (bench/farm.py documents -> parse -> normalize_entry -> the record's
JSON, made once by this tree) into a fresh database on disk through
`SQLiteSink.upsert` in batches of `--batch`, as the storage consumer does,
then `close()` (which indexes what is still pending: part of the cost). Each
tree runs in its own child process (`PYTHONPATH` = the tree), the trees taking
turns (A B, B A, ...), `--rounds` times. CPU is the child's own user + system
time over the writes (every thread: SQLite runs in `asyncio.to_thread`).

After the timed part, untimed, each child writes version 2 of every tenth
record and version 3 of every twentieth (other words), searches a few words and lists a few filters, and
prints a digest of the answers (and the mean wall time of those searches,
each `LIMIT 50`): the trees must agree (the same rows found in
the same order), or the change altered what search returns.

    .venv/bin/python bench/bench_sink.py --tree base=/work/base-sink --tree new=. \
        [--rows 10000] [--batch 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_WORDS = ("the", "news", "market", "report", "city", "water", "2026", "zzzznotaword")


def make_records(rows: int, out: Path) -> None:
    """Normalized farm records, one JSON per line, distinct ids, version 1."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.farm import FarmSpec, feed_body
    from ingest.models import FeedSpec, item_to_json
    from workers.normalize.record import normalize_entry
    from workers.parse import parse_feed_bytes

    spec = FarmSpec(feeds=rows // 30 + 1, items=30)
    feed = FeedSpec("bench", "http://127.0.0.1/")
    lines: list[bytes] = []
    n = 0
    while len(lines) < rows:
        url = f"http://127.0.0.1/feed/{n}.xml"
        parsed = parse_feed_bytes(feed_body(spec, n, 0), {}, url)
        for e in parsed["entries"]:
            lines.append(item_to_json(normalize_entry(e, parsed["feed"], feed, url,
                                                      "2026-01-01T00:00:00Z")))
        n += 1
    out.write_bytes(b"\n".join(lines[:rows]))


async def _child(records_file: Path, batch: int, db: Path) -> dict[str, Any]:
    import orjson

    import ingest
    from ingest.store.base import ItemQuery
    from ingest.store.sqlite import SQLiteSink

    records = [orjson.loads(line) for line in records_file.read_bytes().splitlines()]
    for r in records:
        r["version"] = 1
    sink = SQLiteSink(db)
    await sink.open()
    t0, c0 = time.perf_counter(), os.times()
    for s in range(0, len(records), batch):
        await sink.upsert(records[s:s + batch])
    await sink.close()
    c1, t1 = os.times(), time.perf_counter()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    # Untimed: updates, then the answers that must not change.
    sink = SQLiteSink(db)
    for version, step in ((2, 10), (3, 20)):  # the index must forget the older words
        updated = [dict(r, version=version, title=f"revised zzzzrevised{version} {n}",
                        content_text=f"zzzzrevised{version} body", summary=f"zzzzrevised{version} summary")
                   for n, r in enumerate(records[::step])]
        for s in range(0, len(updated), batch):
            await sink.upsert(updated[s:s + batch])
    digest = hashlib.sha256()
    await sink.query(ItemQuery(text="zzzzindexfirst"))  # indexes what is pending, untimed
    searched = time.perf_counter()
    for word in (*_WORDS, "revised", "zzzzrevised2", "zzzzrevised3 body"):
        for offset in (0, 50):
            found = await sink.query(ItemQuery(text=word, limit=50, offset=offset))
            digest.update(json.dumps([(r["id"], r["version"]) for r in found]).encode())
    search_ms = (time.perf_counter() - searched) * 1000 / (2 * (len(_WORDS) + 3))
    for query in (ItemQuery(limit=100), ItemQuery(feed_id=records[0]["feed_id"], limit=100)):
        digest.update(json.dumps([r["id"] for r in await sink.query(query)]).encode())
    await sink.close()
    return {"rows": len(records), "wall": t1 - t0, "cpu": cpu, "digest": digest.hexdigest()[:16],
            "search_ms": search_ms,
            "db_mib": sum(p.stat().st_size for p in db.parent.iterdir()) / 2**20,
            "ingest": ingest.__file__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", action="append", default=[], help="NAME=DIR[,VAR=VALUE] (repeat; DIR holds ingest/; "
                   "VAR=VALUE: one more environment variable for that tree's child)")
    p.add_argument("--rows", type=int, default=10000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory(prefix="bench-sink-", dir=os.environ.get("BENCH_TMP")) as tmp:
            out = asyncio.run(_child(args.child, args.batch, Path(tmp) / "items.db"))
        print(json.dumps(out))
        return
    trees = [(name, spec) for name, spec in (t.split("=", 1) for t in args.tree)]
    if not trees:
        p.error("give at least one --tree NAME=DIR")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    with tempfile.TemporaryDirectory(prefix="bench-sink-records-") as tmp:
        records_file = Path(tmp) / "records.jsonl"
        make_records(args.rows, records_file)
        for r in range(args.rounds):
            for name, spec in (trees if r % 2 == 0 else trees[::-1]):
                tree, *extra = spec.split(",", 1)
                env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()),
                           **dict(e.split("=", 1) for e in extra))
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(records_file), "--batch", str(args.batch)],
                    env=env, cwd=tree, capture_output=True, text=True, timeout=600, check=True)
                out = json.loads(done.stdout.strip().splitlines()[-1])
                results[name].append(out)
                print(f"round {r} {name}: {out['rows'] / out['wall']:,.0f} rows/s, "
                      f"{1e6 * out['cpu'] / out['rows']:.1f} us CPU/row, db {out['db_mib']:.0f} MiB, "
                      f"digest {out['digest']} ({out['ingest']})", flush=True)
    print(f"\n{args.rows} rows, batches of {args.batch}, {args.rounds} rounds; median (min-max)")
    print("| tree | rows/s | CPU us per row | database + WAL MiB | ms per search | answers digest |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, outs in results.items():
        rate = [o["rows"] / o["wall"] for o in outs]
        cpu = [1e6 * o["cpu"] / o["rows"] for o in outs]
        print(f"| {name} | {statistics.median(rate):,.0f} ({min(rate):,.0f}-{max(rate):,.0f}) | "
              f"{statistics.median(cpu):.1f} ({min(cpu):.1f}-{max(cpu):.1f}) | "
              f"{statistics.median(o['db_mib'] for o in outs):.0f} | "
              f"{statistics.median(o['search_ms'] for o in outs):.2f} | "
              f"{', '.join(sorted({o['digest'] for o in outs}))} |")


if __name__ == "__main__":
    main()
