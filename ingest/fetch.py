"""HTTP fetch: one GET with time and size limits -> Fetched, or FetchError.

The fetcher never parses: it hands bytes and headers on. Transfer encodings
(gzip, deflate, br) are undone by aiohttp while streaming, and the size limit
counts the decoded bytes, so a small compressed bomb is cut off too.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp

from ingest.errors import BodyTooLarge, FetchError, HTTPStatusError
from ingest.models import Fetched
from ingest.settings import Settings

__all__ = ["ACCEPT", "check_scheme", "fetch", "new_session", "utc_now_iso"]

# Feeds first, then anything: some servers answer 406 to a narrow Accept.
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
_CHUNK = 64 * 1024


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_scheme(url: str) -> None:
    """Only http and https are fetched; anything else is refused before any I/O."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"refused {url!r}: only http and https URLs with a host are fetched")


def new_session(settings: Settings) -> aiohttp.ClientSession:
    """One session per process: its connection pool is what makes repeated polls cheap."""
    timeout = aiohttp.ClientTimeout(total=settings.fetch_timeout, sock_connect=settings.connect_timeout)
    return aiohttp.ClientSession(
        timeout=timeout,
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
        trust_env=True,  # proxies from HTTP(S)_PROXY / NO_PROXY
    )


async def _read_limited(response: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"{url}: body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"{url}: body exceeds the limit of {limit} bytes; aborted")
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch(session: aiohttp.ClientSession, url: str, settings: Settings) -> Fetched:
    """GET `url`; return the body of a 2xx answer or raise a FetchError saying why not."""
    check_scheme(url)
    try:
        async with session.get(url, allow_redirects=True, max_redirects=10) as response:
            if response.status >= 400 or response.status < 200:
                raise HTTPStatusError(f"{url}: HTTP {response.status} {response.reason or ''}".rstrip())
            body = await _read_limited(response, settings.max_body_bytes, url)
            return Fetched(
                url=url,
                final_url=str(response.url),
                status=response.status,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=body,
                fetched_at=utc_now_iso(),
            )
    except FetchError:
        raise
    except TimeoutError as e:
        raise FetchError(f"{url}: timed out after {settings.fetch_timeout:g} s") from e
    except aiohttp.TooManyRedirects as e:
        raise FetchError(f"{url}: too many redirects") from e
    except aiohttp.InvalidURL as e:
        raise FetchError(f"{url}: invalid URL") from e
    except aiohttp.ClientConnectorError as e:
        raise FetchError(f"{url}: cannot connect: {e.os_error or e}") from e
    except aiohttp.ClientPayloadError as e:
        raise FetchError(f"{url}: broken response body: {e}") from e
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as e:
        raise FetchError(f"{url}: {type(e).__name__}: {e}") from e
