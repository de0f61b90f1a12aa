"""Memory and time of each hostile document, one fresh process per case.

    .venv/bin/python bench/bench_hostile.py            # every case
    .venv/bin/python bench/bench_hostile.py quadratic  # one case

Each case runs the worker's pure stages (tests/fuzz/target.records_of with the
default Limits: entity guard, parse, caps, normalize, JSON) in a child process
and reports wall time, peak RSS (ru_maxrss of the child) and the outcome.
`--before` runs bare feedparser instead, for the cases where that is safe to
run (the quadratic case is scaled down 33x: full size took 5 GiB).
Figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

__all__ = ["CASES", "main"]


def _rss(items: str, prolog: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}<rss version="2.0"><channel>'
            f"<title>Bench</title>{items}</channel></rss>").encode()


def _item(guid: str, title: str = "Story", extra: str = "", description: str = "Text.") -> str:
    return f"<item><guid>{guid}</guid><title>{title}</title><description>{description}</description>{extra}</item>"


def quadratic(scale: int = 10_000) -> bytes:
    return _rss(_item("q", description="&a;" * scale), f'<!DOCTYPE rss [\n<!ENTITY a "{"A" * 100_000}">\n]>\n')


def billion_laughs() -> bytes:
    decls = '<!ENTITY lol0 "lol">\n' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    return _rss(_item("b", description="&lol9;"), f"<!DOCTYPE rss [\n{decls}]>\n")


CASES: dict[str, Callable[[], bytes]] = {
    "quadratic": lambda: quadratic(),
    "quadratic-300": lambda: quadratic(300),
    "billion-laughs": billion_laughs,
    "items-100000": lambda: _rss("".join(_item(f"g{i}") for i in range(100_000))),
    "text-node-15MB": lambda: _rss(_item("t", description="x" * 15_000_000)),
    "title-1MB": lambda: _rss(_item("t", title="T" * 1_000_000)),
    "guid-100KB": lambda: _rss(_item("g" * 100_000)),
    "enclosures-10000": lambda: _rss(_item("e", extra="".join(
        f'<enclosure url="http://e.example/{i}.mp3" type="audio/mpeg" length="1"/>' for i in range(10_000)))),
    "enclosure-length-1e30": lambda: _rss(_item("a") + _item(
        "odd", extra=f'<enclosure url="http://e.example/a.mp3" length="{10**30}"/>') + _item("b")),
    "lone-surrogate": lambda: _rss(_item("a") + _item("odd", title="x &#xD800; y") + _item("b")),
    "offset-minus-2400": lambda: _rss(_item("a") + _item(
        "odd", extra="<pubDate>Mon, 06 Jan 2025 10:00:00 -2400</pubDate>") + _item("b")),
    "year-0000": lambda: _rss(_item("odd", extra="<pubDate>Mon, 06 Jan 0000 10:00:00 GMT</pubDate>")),
    "utf8-one-bad-byte": lambda: _rss(_item("u", title="Grüße aus Köln \x00")).replace(b"\x00", b"\xff"),
}


def _child(name: str, before: bool) -> dict[str, object]:
    import feedparser
    import orjson

    from ingest.errors import ParseError
    from tests.fuzz.target import records_of
    from workers.limits import Limits
    from workers.normalize.language import detect_language

    if not before:  # load the language model first: its ~125 MB and ~2 s are not the case's
        detect_language("The language model is loaded once per worker process, before timing.")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    body = CASES[name]()
    started = time.monotonic()
    outcome: dict[str, object]
    if before:
        result = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
        outcome = {"entries": len(result.entries), "bozo": str(result.get("bozo_exception") or "")[:80]}
    else:
        try:
            items = records_of(body, {}, Limits())
            sizes = [len(orjson.dumps(i)) for i in items]
            outcome = {"records": len(items), "largest_record_bytes": max(sizes, default=0),
                       "truncated": sorted({f for i in items for f in i.truncated}),
                       "dates": sorted({str(i.published_at) for i in items})[:3],
                       "titles": [i.title[:30] for i in items[:3]]}
        except ParseError as e:
            outcome = {"refused": str(e)[:160]}
    return {"case": name, "mode": "before" if before else "after", "bytes": len(body),
            "seconds": round(time.monotonic() - started, 2),
            "baseline_rss_mb": baseline,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, **outcome}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(argv[1], argv[2] == "before")))
        return
    before = "--before" in argv
    names = [a for a in argv if not a.startswith("--")] or list(CASES)
    for name in names:
        proc = subprocess.run([sys.executable, __file__, "--child", name, "before" if before else "after"],
                              capture_output=True, text=True, timeout=900, cwd=ROOT)
        print(proc.stdout.strip() or f'{{"case": "{name}", "error": {json.dumps(proc.stderr[-300:])}}}')


if __name__ == "__main__":
    main(sys.argv[1:])
