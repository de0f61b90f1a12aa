"""Run an aiohttp app on its own event loop in a thread, for a whole test session.

Both plain tests (CLI subprocesses) and async tests (their own loops) can
then use the same loopback server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from aiohttp import web


class ThreadedApp:
    """Serves `handler` for every GET on each of `hosts`, all on one port."""

    name = "test-server"

    def __init__(self, hosts: Sequence[str] = ("127.0.0.1",)) -> None:
        self.hosts = tuple(hosts)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    async def handler(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handler)
        # Hanging handlers (slow paths) must not hold up shutdown; a client that
        # disconnects cancels its handler, as a real server would stop working for it.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        first = web.TCPSite(self._runner, self.hosts[0], 0)
        await first.start()
        assert first._server is not None and first._server.sockets
        self.port = first._server.sockets[0].getsockname()[1]
        for host in self.hosts[1:]:
            await web.TCPSite(self._runner, host, self.port).start()

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._runner:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop.close()
