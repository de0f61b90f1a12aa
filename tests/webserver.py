"""A real HTTP API server on a free loopback port, in the test's event loop."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ingest.settings import Settings
from ingest.web.server import start_server
from tests.conftest import free_port

TOKEN = "test-token-0123456789"


@dataclasses.dataclass
class Api:
    base: str
    token: str
    http: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return self.base + path

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra} if self.token else dict(extra)

    async def call(self, method: str, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.url(path), json=json,
                                     headers=self.headers(**kw.pop("headers", {})), **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body


@contextlib.asynccontextmanager
async def api_server(settings: Settings, token: str = TOKEN) -> AsyncIterator[Api]:
    port = free_port()
    settings = dataclasses.replace(settings, listen=f"127.0.0.1:{port}", api_token=token)
    started = await start_server(settings)
    assert started is not None
    runner, _ = started
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        yield Api(f"http://127.0.0.1:{port}", token, http)
    finally:
        await http.close()
        await runner.cleanup()
