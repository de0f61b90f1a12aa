"""HTTP fetch: one conditional GET with limits -> Fetched | NotModified | FetchFailed.

The fetcher never parses: it hands bytes and headers on. Expected failures
are values (FetchFailed), so a poll loop over thousands of feeds never
unwinds on one bad server. Redirects are followed here, one hop at a time,
so that every hop passes the URL guard and so that we know whether the whole
chain was permanent (301/308: the feed moved) or not (302/307: it did not).

Transfer encodings (gzip, deflate, br) are undone by aiohttp while
streaming, and the size limit counts decoded bytes, so a small compressed
bomb is cut off too.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

import aiohttp

from ingest.errors import BodyTooLarge, FetchError, HTTPStatusError, URLRefused
from ingest.excerpt import excerpt
from ingest.models import Fetched, FetchFailed, FetchResult, NotModified
from ingest.poll.leanget import can_lean, merged_headers
from ingest.poll.politeness import is_permanent_redirect, is_redirect, retry_after
from ingest.poll.rawget import RawResponse, raw_get
from ingest.poll.timeouts import deadline
from ingest.poll.urlguard import GuardedResolver, check_url, connect_host
from ingest.settings import Settings

__all__ = [
    "ACCEPT",
    "MAX_REDIRECTS",
    "check_scheme",
    "conditional_get",
    "fetch",
    "new_session",
    "utc_now_iso",
]

# Feeds first, then anything: some servers answer 406 to a narrow Accept.
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
MAX_REDIRECTS = 10
_CHUNK = 64 * 1024


_second: tuple[int, str] = (-1, "")  # the last second formatted, and how


def utc_now_iso() -> str:
    """Now as 2026-01-05T06:00:00.123456Z. The date and time of day are formatted once a
    second, a call adds the microseconds (datetime's isoformat took ~1.9 us, this ~0.6;
    strftime per call ~3 us, #21)."""
    global _second
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{int((now - second) * 1_000_000):06d}Z"


def check_scheme(url: str, settings: Settings | None = None) -> None:
    """Refuse a URL before any I/O (scheme, host, literal refused address)."""
    check_url(url, settings.allowed_networks if settings else ())


@functools.cache
def _env_proxies() -> dict[str, str]:
    """HTTP(S)_PROXY / NO_PROXY, read once: scanning os.environ per request cost ~25%
    of a 304 poll's CPU in the poll benchmark."""
    return getproxies_environment()


def _proxy_for(url: str, settings: Settings) -> str | None:
    if settings.proxy:
        return settings.proxy
    proxies = _env_proxies()
    if not proxies:
        return None
    parts = urlsplit(url)
    if parts.scheme in proxies and not proxy_bypass_environment(parts.hostname or "", proxies):
        return proxies[parts.scheme]
    return None


def _proxy_hosts(settings: Settings) -> set[str]:
    candidates = [settings.proxy, *_env_proxies().values()]
    return {urlsplit(p).hostname or "" for p in candidates if p} - {""}


def new_session(settings: Settings) -> aiohttp.ClientSession:
    """One session per process: its connection pool is what makes repeated polls cheap.

    Every connection goes through GuardedResolver, so no request (poll,
    enqueue, add, discovery, redirect hop) can reach a refused address.
    """
    timeout = aiohttp.ClientTimeout(total=settings.fetch_timeout, sock_connect=settings.connect_timeout)
    resolver = GuardedResolver(settings.allowed_networks, _proxy_hosts(settings))
    connector = aiohttp.TCPConnector(
        resolver=resolver, limit=settings.global_concurrency, limit_per_host=0, ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
        # Proxies are chosen per request by _proxy_for (from config or the
        # environment, read once); trust_env would also read ~/.netrc in a
        # thread on every request.
        trust_env=False,
    )


async def _read_limited(response: aiohttp.ClientResponse | RawResponse, limit: int, url: str) -> bytes:
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


async def _judge_target_behind_proxy(session: aiohttp.ClientSession, url: str) -> None:
    """Through a proxy our resolver sees only the proxy; resolve the target to judge it."""
    connector = session.connector
    resolver = getattr(connector, "_resolver", None)
    host = connect_host(url)  # as the proxy will see it (IDNA-mapped), not as written
    if isinstance(resolver, GuardedResolver) and host:
        try:
            await resolver.resolve(host, 0)
        except OSError:
            pass  # unresolvable here; the proxy will say so


@functools.lru_cache(maxsize=8)
def _request_timeout(connect_timeout: float) -> aiohttp.ClientTimeout:
    """The timeout a fetch hands aiohttp: no total (the fetch's own deadline is that, from
    the coarse timer), only the time to open a new connection. One object, reused."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)


def _headers_of(response: aiohttp.ClientResponse | RawResponse) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


async def conditional_get(  # noqa: C901 - one linear walk over the outcomes of a request
    session: aiohttp.ClientSession,
    url: str,
    settings: Settings,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    """GET `url` with validators; follow redirects hop by hop through the guard."""
    allowed = settings.allowed_networks
    request_headers: dict[str, str] = {}
    if etag:
        request_headers["If-None-Match"] = etag
    if last_modified:
        request_headers["If-Modified-Since"] = last_modified
    current = url
    permanent_only = True
    hops = 0

    def failed(error: str, **kw: object) -> FetchFailed:
        moved = current if hops and permanent_only else None
        # Messages may quote the server (a non-HTTP answer quoted 170 KB): cap and escape.
        return FetchFailed(url=url, error=excerpt(error), fetched_at=utc_now_iso(), permanent_url=moved, **kw)  # type: ignore[arg-type]

    timeout = _request_timeout(settings.connect_timeout)
    lean_headers = None  # the session's headers with ours, built once for every hop
    try:
        # The whole fetch, every redirect hop and the body included, within fetch_timeout,
        # timed by the loop's coarse timer (up to 50 ms late), not by aiohttp (#21).
        with deadline(settings.fetch_timeout):
            while True:
                target = check_url(current, allowed)
                proxy = _proxy_for(current, settings)
                if proxy:
                    await _judge_target_behind_proxy(session, current)
                if proxy is None and can_lean(session):
                    if lean_headers is None:
                        lean_headers = merged_headers(session, request_headers)
                    request = raw_get(session, target, lean_headers, timeout)
                else:
                    request = session.get(target, headers=request_headers, allow_redirects=False,
                                          proxy=proxy, timeout=timeout)
                async with await request as response:
                    status = response.status
                    if is_redirect(status):
                        location = response.headers.get("Location")
                        if not location:
                            return failed(f"{current}: HTTP {status} without a Location header", status=status)
                        if not is_permanent_redirect(status):
                            permanent_only = False
                        hops += 1
                        if hops > MAX_REDIRECTS:
                            return failed(f"{url}: more than {MAX_REDIRECTS} redirects", status=status)
                        current = urljoin(current, location)
                        continue
                    moved = current if hops and permanent_only else None
                    headers = _headers_of(response)
                    if status == 304:
                        return NotModified(url=url, headers=headers, fetched_at=utc_now_iso(), permanent_url=moved)
                    if status >= 400 or status < 200:
                        return failed(
                            f"{current}: HTTP {status} {response.reason or ''}".rstrip(), status=status,
                            retry_after=retry_after(headers, datetime.now(UTC)),
                        )
                    body = await _read_limited(response, settings.max_body_bytes, current)
                    return Fetched(url=url, final_url=current, status=status, headers=headers, body=body,
                                   fetched_at=utc_now_iso(), permanent_url=moved)
    except URLRefused as e:
        return failed(str(e), refused=True)
    except BodyTooLarge as e:
        return failed(str(e))
    except TimeoutError:
        return failed(f"{current}: timed out after {settings.fetch_timeout:g} s")
    except aiohttp.InvalidURL:
        return failed(f"{current}: invalid URL")
    except aiohttp.ClientConnectorError as e:
        # DNS failure, refused or unreachable: possibly our own network, not the feed.
        return failed(f"{current}: cannot connect: {e.os_error or e}", network=True)
    except aiohttp.ClientPayloadError as e:
        return failed(f"{current}: broken response body: {e}")
    except (aiohttp.ClientError, asyncio.IncompleteReadError, OSError) as e:
        return failed(f"{current}: {type(e).__name__}: {e}")


async def fetch(session: aiohttp.ClientSession, url: str, settings: Settings) -> Fetched:
    """Unconditional GET for one-off jobs: the body, or a FetchError saying why not."""
    result = await conditional_get(session, url, settings)
    if isinstance(result, Fetched):
        return result
    if isinstance(result, NotModified):  # pragma: no cover - we sent no validators
        raise FetchError(f"{url}: unexpected 304 Not Modified")
    if result.refused:
        raise URLRefused(result.error)
    if result.status is not None:
        raise HTTPStatusError(result.error)
    raise FetchError(result.error)


