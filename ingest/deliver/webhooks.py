"""Webhooks: POST each item (optionally only some feeds or tags) to a URL, signed.

Each webhook is its own consumer group on the item stream (`webhook:<name>`),
so it gets every item durably, whatever the other consumers do, and several
`ingest run` processes share one webhook's work without sending an item
twice. Per entry:

* the body is the item record's JSON exactly as delivered (a compressed stream
  entry decompressed: the same bytes either way);
* `X-Ingest-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>`;
  `X-Ingest-Delivery: <stream entry id>` is the same on every retry of one
  delivery, so a receiver can drop a repeat after our own crash (delivery is
  at least once, like every consumer group);
* a 2xx answer is success; a network error, timeout, 408, 429 or 5xx is
  retried after `webhook_retry_seconds`, doubling up to 60 s, at most
  `webhook_max_attempts` times; any other 4xx is final at once (resending
  the same body cannot help); the entry then goes to the dead-letter stream
  (kind `webhook`) and `ingest dead retry` can send it again.

Configuration is a TOML file named by the `webhooks_file` setting:

    [[webhook]]
    name = "newsroom"                 # unique; letters, digits, - and _
    url = "https://example.org/hook"
    secret = "s3cret"                 # or secret_env = "NEWSROOM_SECRET"
    feeds = ["140166970a7736d5"]      # optional: only these feeds ...
    tags = ["asia"]                   # ... or feeds with these tags (either matches)
    start = "$"                       # where a new group starts: "$" new items, "0" all
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ingest.deliver.groups import Entry, GroupConsumer, GroupReader, default_consumer_name
from ingest.errors import IngestError, SettingsError
from ingest.keys import Keys
from ingest.settings import Settings

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookConsumer",
    "WebhookSpec",
    "backoff_seconds",
    "is_retryable",
    "load_webhooks",
    "matches",
    "sign",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Ingest-Signature"
DELIVERY_HEADER = "X-Ingest-Delivery"
_MAX_BACKOFF = 60.0
_CONCURRENCY = 8  # POSTs in flight per webhook


@dataclass(frozen=True)
class WebhookSpec:
    name: str  # unique; the consumer group is webhook:<name>
    url: str  # http(s) URL the items are POSTed to
    secret: str  # HMAC-SHA256 key
    feeds: tuple[str, ...] = ()  # only items of these feeds (with tags: either matches)
    tags: tuple[str, ...] = ()  # only items of feeds with these tags
    start: str = "$"  # where a new group starts on the stream: "$", "0" or an entry id


class Interrupted(IngestError):
    """The service is stopping while an entry waits for a retry; it stays pending."""


def sign(secret: str, body: bytes) -> str:
    """Pure: the signature header's value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def matches(spec: WebhookSpec, record: Mapping[str, Any]) -> bool:
    """Pure: does this webhook want this item? No filters: every item."""
    if not spec.feeds and not spec.tags:
        return True
    if record.get("feed_id") in spec.feeds:
        return True
    return any(tag in spec.tags for tag in record.get("tags") or ())


def is_retryable(status: int) -> bool:
    """Pure: is an HTTP answer worth sending the same body again?"""
    return status in (408, 429) or status >= 500


def backoff_seconds(attempt: int, base: float) -> float:
    """Pure: wait after failed attempt number `attempt` (1-based): base, 2 base, 4 base ..."""
    return float(min(base * 2.0 ** (attempt - 1), _MAX_BACKOFF))


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"setting 'webhooks_file': {where}: {key!r} must be a list of strings")
    return tuple(value)


def _spec(where: str, table: Any) -> WebhookSpec:
    if not isinstance(table, dict):
        raise SettingsError(f"setting 'webhooks_file': {where} is not a table")
    known = {"name", "url", "secret", "secret_env", "feeds", "tags", "start"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SettingsError(f"setting 'webhooks_file': {where}: unknown key {unknown[0]!r}")
    name, url = table.get("name"), table.get("url")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise SettingsError(
            f"setting 'webhooks_file': {where}: 'name' must be letters, digits, - or _")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise SettingsError(f"setting 'webhooks_file': {where}: 'url' must be an http(s) URL")
    secret = table.get("secret")
    if "secret_env" in table:
        secret = os.environ.get(str(table["secret_env"]))
        if not secret:
            raise SettingsError(f"setting 'webhooks_file': {where}: environment variable "
                                f"{table['secret_env']!r} ('secret_env') is not set")
    if not isinstance(secret, str) or not secret:
        raise SettingsError(
            f"setting 'webhooks_file': {where}: 'secret' (or 'secret_env') is required")
    start = str(table.get("start", "$"))
    return WebhookSpec(name=name, url=url, secret=secret,
                       feeds=_strings(where, "feeds", table.get("feeds", [])),
                       tags=_strings(where, "tags", table.get("tags", [])), start=start)


def load_webhooks(path: str) -> list[WebhookSpec]:
    """The webhooks of a `webhooks_file`; errors name the setting and the entry."""
    if not path:
        return []
    try:
        with Path(path).expanduser().open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise SettingsError(f"setting 'webhooks_file': cannot read {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"setting 'webhooks_file': {path} is not valid TOML: {e}") from e
    tables = data.get("webhook", [])
    if set(data) - {"webhook"} or not isinstance(tables, list):
        raise SettingsError(f"setting 'webhooks_file': {path} must hold only [[webhook]] tables")
    specs = [_spec(f"{path} webhook #{i + 1}", t) for i, t in enumerate(tables)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SettingsError(f"setting 'webhooks_file': {path}: webhook names must be unique")
    return specs


class WebhookConsumer:
    """Delivers one webhook's items: its consumer group -> signed POSTs -> XACK."""

    def __init__(self, redis: Any, keys: Keys, spec: WebhookSpec, settings: Settings,
                 stop: asyncio.Event, consumer: str | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.stop = stop
        self.sent = 0  # items the receiver accepted (for logs and tests)
        self.reader = GroupReader(
            redis, keys, group=keys.webhook_group(spec.name),
            consumer=consumer or default_consumer_name(), batch_size=50,
            claim_idle_ms=settings.sink_claim_idle_seconds * 1000, start_id=spec.start)
        # The handler retries with backoff itself; what it reports failed is final.
        self.loop = GroupConsumer(self.reader, self.handle, kind="webhook", max_attempts=1,
                                  block_ms=settings.sink_block_ms)
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, entry: Entry) -> str | None:
        """One attempt; None on success, else why it failed (prefixed 'final:' if not retryable)."""
        assert self._session is not None
        body = entry.raw
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: sign(self.spec.secret, body),
                   DELIVERY_HEADER: entry.id.decode(), "User-Agent": self.settings.user_agent}
        try:
            async with self._session.post(self.spec.url, data=body, headers=headers) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return None
                why = f"HTTP {resp.status}"
                return why if is_retryable(resp.status) else f"final: {why}"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return f"{type(e).__name__}: {e}"

    async def _deliver(self, entry: Entry) -> str | None:
        """Every attempt for one entry; None when delivered (or not wanted), else the error."""
        try:
            record = orjson.loads(entry.raw)
        except ValueError as e:  # not JSON, or a zstd frame that cannot be read
            return str(e) if str(e).startswith("unreadable item") else f"unreadable item: {e}"
        if not isinstance(record, dict) or not matches(self.spec, record):
            return None
        error: str | None = None
        for attempt in range(1, self.settings.webhook_max_attempts + 1):
            error = await self._post(entry)
            if error is None:
                self.sent += 1
                return None
            if error.startswith("final:") or attempt == self.settings.webhook_max_attempts:
                break
            delay = backoff_seconds(attempt, self.settings.webhook_retry_seconds)
            log.info("webhook %s: %s for entry %s; attempt %d in %.1f s", self.spec.name, error,
                     entry.id.decode(), attempt + 1, delay)
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except TimeoutError:
                continue
            raise Interrupted(f"webhook {self.spec.name}: stopping; entry stays pending")
        return f"{self.spec.url}: {error}"

    async def handle(self, entries: Sequence[Entry]) -> Mapping[Entry, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout))
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def one(entry: Entry) -> str | None:
            async with limit:
                return await self._deliver(entry)

        results = await asyncio.gather(*(one(e) for e in entries))
        return {e: err for e, err in zip(entries, results, strict=True) if err is not None}

    async def run(self) -> None:
        try:
            await self.loop.run(self.stop)
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None
