"""Helpers shared by the CLI modules: run a coroutine, report IngestError, get Settings,
and leave quietly when the reader of stdout goes away."""

from __future__ import annotations

import asyncio
import os
import select
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from ingest.errors import IngestError, URLRefused
from ingest.settings import Settings

__all__ = ["ALLOW_NETWORKS_HINT", "READER_GONE_STATUS", "QuietPipeGroup", "reader_gone", "run_async", "settings_of",
           "until_reader_gone"]

# A newcomer's first `ingest add http://127.0.0.1:8000/feed.xml` meets the URL guard;
# say how to open it, and that `ingest run` (whose workers fetch) needs it too.
ALLOW_NETWORKS_HINT = (
    "hint: only public addresses are fetched. To fetch from a local or private network "
    "(a test server, say), allow it for this command and for `ingest run`, e.g. "
    "INGEST_ALLOW_NETWORKS=127.0.0.0/8 (setting allow_networks, docs/configuration.md)"
)

# What a shell reports for a command ended by SIGPIPE (128 + 13), as `yes | head -1` does.
READER_GONE_STATUS = 141

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop (libuv) where it is installed, else asyncio's own.

    Every process here is one event loop doing many small network exchanges (polls,
    Redis round trips); uvloop's loop costs less per exchange: measured on the
    benchmark suite, 304 polls +14%/s, mixed +15%, cold +2.5% (docs/decisions.md).
    It is a dependency except on Windows, where it does not exist. With a standard
    stream closed (`ingest subscribe >&-`) asyncio's loop is used: libuv would be
    given fd 0, 1 or 2 for its own use and abort when it closes it.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            return None
    return uvloop.new_event_loop


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an IngestError prints one line and exits 1."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro)
    except IngestError as e:
        click.echo(f"error: {e}", err=True)
        if isinstance(e, URLRefused) and "allow_networks" in str(e):
            click.echo(ALLOW_NETWORKS_HINT, err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def reader_gone() -> None:
    """Exit quietly because stdout's reader closed it (`ingest subscribe | head -1`).

    Not an error of ours: no message, no traceback. stdout is pointed at /dev/null
    first, so the interpreter's final flush of what is still buffered cannot fail
    again ("Exception ignored ... BrokenPipeError").
    """
    if sys.stdout is not None:  # None: started with stdout closed (`>&-`)
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
    sys.exit(READER_GONE_STATUS)


async def until_reader_gone(fd: int, period: float = 0.5) -> None:
    """Return once `fd` is a pipe whose reader has closed it; never return otherwise.

    A command that follows a stream (`ingest subscribe ... | head -1`) would only
    learn that its reader left at its next write, which may be hours away on a quiet
    feed; `tail -f | head -1` has the same flaw. poll() reports POLLERR on a pipe's
    write end as soon as the read end is closed, so a cheap check every `period`
    seconds ends the command then. A terminal or a file never reports it.
    """
    if not hasattr(select, "poll"):  # Windows: learn it at the next write instead
        await asyncio.Event().wait()
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: POLLERR / POLLHUP / POLLNVAL are always reported
    gone = select.POLLERR | select.POLLHUP | select.POLLNVAL
    while True:
        if any(events & gone for _, events in poller.poll(0)):
            return
        await asyncio.sleep(period)


class QuietPipeGroup(click.Group):
    """The `ingest` group: a BrokenPipeError from any command is the reader going away."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            reader_gone()
            raise  # not reached: reader_gone exits


def settings_of(ctx: click.Context) -> Settings:
    """The Settings the top-level `ingest` group loaded."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings
