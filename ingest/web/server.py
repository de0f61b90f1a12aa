"""Serving the app on `listen` until stopped: one part of `ingest run`, or all of `ingest api`."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ingest.settings import Settings
from ingest.web.access import check_exposure, parse_listen
from ingest.web.app import build_app

__all__ = ["serve", "start_server"]

log = logging.getLogger(__name__)


async def start_server(settings: Settings) -> tuple[web.AppRunner, int] | None:
    """Start listening (None when `listen` is empty); returns the runner and the bound port.

    Raises SettingsError when the address is not loopback and no token is set.
    """
    address = parse_listen(settings.listen)
    if address is None:
        return None
    host, port = address
    check_exposure(host, settings.api_token)
    runner = web.AppRunner(build_app(settings), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = site._server  # the asyncio server, to learn the port when 0 was asked
    sockets = getattr(server, "sockets", None)
    if port == 0 and sockets:
        bound = int(sockets[0].getsockname()[1])
    log.info("HTTP API on http://%s:%d/ (%s)", host, bound,
             "token required" if settings.api_token else "no token: loopback only")
    return runner, bound


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set."""
    started = await start_server(settings)
    if started is None:
        await stop.wait()
        return
    runner, _ = started
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
