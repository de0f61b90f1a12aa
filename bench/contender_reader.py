"""The `reader` library (lemon24/reader 3.x) as a bench contender, one worker.

Driven by bench/suite.py over stdin/stdout, one line per command:
  update  -> one `update_feeds(scheduled=False, workers=1)`: every feed, due or not; prints JSON
             {"seconds": wall time, "new": entries added, "feeds": feeds updated}
  quit    -> exit
Arguments: the SQLite path reader uses, and a file of feed URLs (one a line).
reader imports `sgmllib` through feedparser's loose parser, so it needs the
`sgmllib3k` package (both are in the `bench` extra of pyproject.toml).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

__all__ = ["main"]


def main() -> None:
    from reader import make_reader

    db, urls_file = sys.argv[1], sys.argv[2]
    reader = make_reader(db)
    for url in Path(urls_file).read_text().split():
        reader.add_feed(url, exist_ok=True)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        before = reader.get_entry_counts().total or 0
        start = time.perf_counter()
        feeds = 0
        for _ in reader.update_feeds_iter(scheduled=False, workers=1):
            feeds += 1
        seconds = time.perf_counter() - start
        new = (reader.get_entry_counts().total or 0) - before
        print(json.dumps({"seconds": seconds, "new": new, "feeds": feeds}), flush=True)
    reader.close()


if __name__ == "__main__":
    main()
