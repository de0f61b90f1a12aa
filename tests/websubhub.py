"""A small WebSub hub for the tests and the benchmark, on loopback, in the caller's event loop.

It does what a real hub does, in miniature (W3C WebSub §5-§8): accepts
subscription requests (202), verifies intent against the subscriber's
callback with a random challenge, keeps verified subscriptions with their
lease and secret, and distributes content signed with HMAC of the secret.
`grant_lease` overrides the lease it grants (to test expiry and renewal).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from ingest.push.signature import sign

__all__ = ["HubSubscription", "Verification", "WebSubHub", "article_page"]


def article_page(n: int) -> bytes:
    """The article page of story `n` (served at /pages/<n>): paragraphs longer than a teaser."""
    paragraph = (f"<p>Story number {n} in full. The council met on Tuesday evening and agreed, after a long "
                 "debate about the budget, to repair the old bridge before the winter, to open the library "
                 "on Sundays and to plant two hundred trees along the river. Residents who spoke at the "
                 "meeting welcomed the decision but asked for a timetable.</p>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Story {n}</title></head>"
            f"<body><article><h1>Story {n}</h1>{paragraph * 4}</article></body></html>").encode()


@dataclass
class HubSubscription:
    callback: str
    topic: str
    secret: str
    expires: float


@dataclass(frozen=True)
class Verification:
    mode: str
    topic: str
    callback: str
    status: int  # the subscriber's answer
    confirmed: bool  # 200 with the challenge echoed


@dataclass
class WebSubHub:
    grant_lease: int | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    subscriptions: dict[tuple[str, str], HubSubscription] = field(default_factory=dict)
    documents: dict[str, bytes] = field(default_factory=dict)  # served at /feeds/<name> (the publisher)
    pages: dict[str, bytes] = field(default_factory=dict)  # HTML served at /pages/<name> (its articles)
    page_hits: dict[str, int] = field(default_factory=dict)  # requests for /pages/<name>, by name
    page_gate: asyncio.Event | None = None  # when set: pages are answered only once it is set
    port: int = 0
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hub", self._subscribe)
        app.router.add_get("/feeds/{name}", self._document)
        app.router.add_get("/pages/{name}", self._page)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def feed_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/feeds/{name}"

    async def _document(self, request: web.Request) -> web.Response:
        body = self.documents.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/atom+xml")

    def page_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/pages/{name}"

    async def _page(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.page_hits[name] = self.page_hits.get(name, 0) + 1
        if self.page_gate is not None:
            await asyncio.wait_for(self.page_gate.wait(), 60)  # bounded, as every wait here
        body = self.pages.get(name)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    async def _subscribe(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        if form.get("hub.mode") not in ("subscribe", "unsubscribe") or not form.get("hub.callback"):
            return web.Response(status=400, text="bad request")
        task = asyncio.create_task(self._verify(form))  # verification is asynchronous (§5.3)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(status=202, text="accepted")

    async def _verify(self, form: dict[str, str]) -> None:
        assert self._http is not None
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        lease = self.grant_lease or int(form.get("hub.lease_seconds") or 3600)
        challenge = secrets.token_urlsafe(16)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge,
                  "hub.lease_seconds": str(lease)}
        async with self._http.get(callback, params=params) as response:
            text = await response.text()
            confirmed = response.status == 200 and text == challenge
            self.verifications.append(Verification(mode, topic, callback, response.status, confirmed))
        if not confirmed:
            return
        if mode == "subscribe":
            self.subscriptions[(callback, topic)] = HubSubscription(
                callback, topic, form.get("hub.secret", ""), time.time() + lease)
        else:
            self.subscriptions.pop((callback, topic), None)

    def live(self, topic: str) -> list[HubSubscription]:
        """Subscriptions of `topic` whose lease has not run out (expired ones are dropped)."""
        now = time.time()
        for key, sub in list(self.subscriptions.items()):
            if sub.expires <= now:
                del self.subscriptions[key]
        return [s for s in self.subscriptions.values() if s.topic == topic]

    async def publish(self, topic: str, body: bytes, content_type: str = "application/atom+xml",
                      method: str = "sha256") -> list[int]:
        """Distribute `body` to every live subscriber of `topic`; their HTTP statuses."""
        assert self._http is not None
        statuses = []
        for sub in self.live(topic):
            headers = {"Content-Type": content_type, "X-Hub-Signature": sign(body, sub.secret, method)}
            async with self._http.post(sub.callback, data=body, headers=headers) as response:
                statuses.append(response.status)
        return statuses
