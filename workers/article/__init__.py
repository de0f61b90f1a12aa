"""Full text from article pages (#15): when to fetch, whether we may, what the page says.

policy.py decides (pure functions), extract.py and metadata.py read a page
(pure, CPU-bound: run in the worker processes, never on the poller's loop),
fetch.py is the thin I/O shell (the feed fetcher's guarded GET, robots.txt
cached in Redis). See docs/full-text.md.
"""

__all__: list[str] = []
