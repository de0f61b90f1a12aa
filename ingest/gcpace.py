"""The garbage collector's pace in the `ingest run` process (#21).

CPython collects its youngest generation every 700 net new container objects, and
each object that survives two young collections moves to the oldest generation;
once those make up a quarter of it, the whole heap is traversed. A poller keeps a
few hundred fetches in flight, each with its tasks, futures, aiohttp request and
response objects, for milliseconds: long enough to survive two young collections,
then freed by reference counting. So under load almost everything the poller makes
is promoted, and the whole heap (~60,000 objects after start-up) was traversed
about twice a second: 16-22% of the daemon's CPU during warm polls (gc.callbacks,
bench/bench_warm.py), up to 185 ms at a time on the event loop.

What the process keeps from start-up (modules, settings, compiled patterns, the
parts of the service) is never garbage: `gc.freeze()` moves it out of every
collection. And a young collection every `YOUNG_THRESHOLD` (50,000) net new objects
instead of 700 lets the poller's short-lived objects die first. Garbage that only a
collection frees (reference cycles: an exception with its traceback, for one) now
waits for up to that many new objects, a few MiB at most.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "pace_collector"]

YOUNG_THRESHOLD = 50_000


def pace_collector() -> None:
    """For a long-running service process, once its start-up imports are done."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
