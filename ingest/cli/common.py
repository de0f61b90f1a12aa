"""Helpers shared by the CLI modules: run a coroutine, report IngestError, get Settings."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from ingest.errors import IngestError
from ingest.settings import Settings

__all__ = ["run_async", "settings_of"]

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an IngestError prints one line and exits 1."""
    try:
        return asyncio.run(coro)
    except IngestError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def settings_of(ctx: click.Context) -> Settings:
    """The Settings the top-level `ingest` group loaded."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings
