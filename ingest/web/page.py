"""The status page as one server-rendered HTML document: inline CSS and SVG, no script.

No build step, no CDN, nothing fetched by the browser: the page works on a
machine without internet access and renders the same everywhere. It reloads
itself (`<meta http-equiv="refresh">`) and lays out in one column on a phone.
Pure: StatusData in, text out.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from ingest.web.status import StatusData, group_mark, lag_entries

__all__ = ["chart_svg", "render_page"]

_CSS = """
:root{color-scheme:light dark;--fg:#1d2430;--muted:#5b6574;--bg:#f6f7f9;--card:#fff;--line:#d9dee5;
--ok:#1f8a4c;--warn:#b7791f;--bad:#c53030;--bar:#3b6fd8}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--muted:#9aa4b2;--bg:#12161c;--card:#1b2129;
--line:#2c343f;--bar:#6d9bff}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
color:var(--fg);background:var(--bg)}header{padding:14px 16px;border-bottom:1px solid var(--line);
display:flex;flex-wrap:wrap;gap:6px 16px;align-items:baseline}h1{font-size:18px;margin:0}
.muted{color:var(--muted);font-size:13px}main{padding:12px;display:grid;gap:12px;
grid-template-columns:repeat(auto-fit,minmax(280px,1fr));max-width:1200px;margin:0 auto}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0}
h2{font-size:14px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin:0 0 8px}
.wide{grid-column:1/-1}.tiles{display:flex;flex-wrap:wrap;gap:8px}.tile{flex:1 1 90px;
border:1px solid var(--line);border-radius:6px;padding:6px 10px}.tile b{display:block;font-size:22px}
.ok b{color:var(--ok)}.failing b{color:var(--warn)}.disabled b{color:var(--bad)}
table{width:100%;border-collapse:collapse;font-size:13px}td,th{text-align:left;padding:5px 4px;
border-top:1px solid var(--line);vertical-align:top}th{color:var(--muted);font-weight:500}
td.num{text-align:right;white-space:nowrap}.err{color:var(--bad);word-break:break-word}
.url{word-break:break-all}svg{width:100%;height:110px;display:block}
.axis-labels{display:flex;justify-content:space-between;margin-top:4px}svg .bar{fill:var(--bar)}
svg .axis{stroke:var(--line)}
"""


def chart_svg(per_minute: list[tuple[int, int]], width: int = 600, height: int = 100) -> str:
    """Pure: items per minute as bars, oldest left; labels in HTML so they keep their size."""
    peak = max((n for _, n in per_minute), default=0)
    slot = width / max(len(per_minute), 1)
    bars = []
    for i, (minute, count) in enumerate(per_minute):
        h = 0 if not peak else (height - 2) * count / peak
        label = time.strftime("%H:%M", time.gmtime(minute * 60))
        bars.append(f'<rect class="bar" x="{i * slot + 0.5:.1f}" y="{height - 1 - h:.1f}" '
                    f'width="{max(slot - 1, 0.5):.1f}" height="{h:.1f}">'
                    f'<title>{label} UTC: {count} items</title></rect>')
    first = time.strftime("%H:%M", time.gmtime(per_minute[0][0] * 60)) if per_minute else ""
    last = time.strftime("%H:%M", time.gmtime(per_minute[-1][0] * 60)) if per_minute else ""
    return (f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
            f'aria-label="items per minute, last hour">'
            f'<line class="axis" x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}"/>{"".join(bars)}</svg>'
            f'<div class="axis-labels muted"><span>{first} UTC</span><span>peak {peak}/min</span>'
            f'<span>{last}</span></div>')


def _failing_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="muted">No feed is failing.</p>'
    body = "".join(
        f'<tr><td><span class="url">{escape(r["title"] or r["url"])}</span><br>'
        f'<span class="muted">{escape(r["id"])} · {escape(r["state"])}</span>'
        f'<div class="err">{escape(r["last_error"] or "")}</div></td>'
        f'<td class="num">{r["consecutive_errors"]}</td></tr>' for r in rows)
    return f"<table><tr><th>feed / last error</th><th>errors</th></tr>{body}</table>"


def _feeds(data: StatusData) -> str:
    if not data.feeds:
        return '<p class="muted">No feed registered yet (ingest add URL).</p>'
    body = "".join(
        f'<tr><td><span class="url">{escape(r["title"] or r["url"])}</span><br>'
        f'<span class="muted url">{escape(r["url"])}</span></td><td>{escape(r["state"])}</td>'
        f'<td class="num">{r["items"]}</td></tr>' for r in data.feeds)
    more = data.feed_count - len(data.feeds)
    tail = f'<p class="muted">and {more} more (GET /api/v1/feeds)</p>' if more > 0 else ""
    return f"<table><tr><th>feed</th><th>state</th><th>items</th></tr>{body}</table>{tail}"


def _groups(data: StatusData) -> str:
    s = data.snapshot
    rows = "".join(f"<tr><td>{escape(g.name)}{escape(group_mark(g.durable))}</td><td class=num>{g.consumers}</td>"
                   f"<td class=num>{g.pending}</td><td class=num>{lag_entries(g.lag)}{g.lag_seconds:.1f} s</td></tr>"
                   for g in s.groups)
    table = (f"<table><tr><th>consumer group</th><th>consumers</th><th>pending</th><th>lag</th></tr>{rows}</table>"
             if rows else '<p class="muted">No consumer group yet.</p>')
    busy = (f'<div class="err">Backpressure: no new work taken: {escape(s.backpressure)}</div>'
            if s.backpressure else "")
    trimmed = int(s.counters.get("stream_trimmed_unread", 0))
    released = int(s.counters.get("durable_groups_released", 0))
    losses = (f'<p class="err">{trimmed} entries trimmed unread; {released} durable groups released</p>'
              if trimmed or released else "")
    return (f'{busy}<div class="tiles"><div class="tile">queue<b>{s.queue_depth}</b></div>'
            f'<div class="tile">stream<b>{s.stream_length}</b></div></div>{table}{losses}')


def _dead(data: StatusData) -> str:
    if not data.recent_dead:
        return f'<p class="muted">{data.snapshot.dead_letters} dead letters.</p>'
    rows = "".join(f'<tr><td>{escape(d["kind"])}</td><td><span class="url">{escape(d["where"])}</span>'
                   f'<div class="err">{escape(d["error"][:300])}</div></td></tr>' for d in data.recent_dead)
    return (f'<p class="muted">{data.snapshot.dead_letters} dead letters; newest:</p>'
            f"<table><tr><th>kind</th><th>where / why</th></tr>{rows}</table>")


def render_page(data: StatusData, refresh_seconds: int) -> str:
    tiles = "".join(f'<div class="tile {state}">{state}<b>{n}</b></div>' for state, n in data.feeds_by_state.items())
    total_hour = sum(n for _, n in data.per_minute)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(data.generated_at))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{refresh_seconds}">
<link rel="icon" href="data:,">
<title>ingest status</title><style>{_CSS}</style></head>
<body><header><h1>ingest</h1><span class="muted">updated {when}; refreshes every {refresh_seconds} s</span>
</header><main>
<section><h2>Feeds by state</h2><div class="tiles">{tiles}</div></section>
<section><h2>Queue and consumers</h2>{_groups(data)}</section>
<section><h2>Dead letters</h2>{_dead(data)}</section>
<section class="wide"><h2>Items per minute, last hour ({total_hour} items)</h2>{chart_svg(data.per_minute)}</section>
<section class="wide"><h2>Most failing feeds</h2>{_failing_rows(data.failing)}</section>
<section class="wide"><h2>Feeds, newest first</h2>{_feeds(data)}</section>
</main></body></html>
"""
