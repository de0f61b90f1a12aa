"""The one guard every outgoing request passes: only http(s) to public addresses.

A feed URL comes from users, OPML files and redirects, so it can point at the
machine itself, the private network or a cloud metadata service (SSRF). The
guard judges the address actually connected to:

* names are judged after resolution, inside the resolver aiohttp connects with
  (`GuardedResolver`), so a name that resolves to 10.0.0.1 is refused, and a
  name with any refused address is refused whole (no DNS-rebinding lottery);
* literal addresses never reach a resolver, so `check_url` judges them first,
  including the legacy forms `inet_aton` accepts (2130706433, 0x7f.1, 0177.0.0.1)
  and IPv4-mapped IPv6 (::ffff:127.0.0.1);
* the host judged is the one the client connects to (`connect_host`): yarl's
  IDNA mapping turns fullwidth or circled digits and ideographic full stops
  (`１２７．０．０．１`, `①②⑦.⓪.⓪.①`, `127。0。0。1`) into an IP literal that
  aiohttp connects to without asking any resolver, so the name as written
  is never what is judged (#12);
* redirects are followed by our own code, one hop at a time, each through both.

`allow_networks` (INGEST_ALLOW_NETWORKS) opens ranges on purpose; the tests
open 127.0.0.0/8. The decision itself, `refusal_reason`, is a pure function.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import time
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ingest.errors import URLRefused

__all__ = [
    "GuardedResolver",
    "ParsedURLs",
    "Network",
    "check_url",
    "connect_host",
    "legacy_ipv4",
    "pacing_host",
    "parse_networks",
    "refusal_reason",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges the stdlib flags do not name on their own.
_METADATA = [ipaddress.ip_network(n) for n in (
    "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack metadata
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "fd00:ec2::254/128",  # AWS metadata over IPv6
)]
_SHARED = [ipaddress.ip_network("100.64.0.0/10")]  # carrier-grade NAT


def parse_networks(text: str | Iterable[str]) -> list[Network]:
    """"127.0.0.0/8, ::1/128" -> networks; ValueError names the bad entry."""
    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    networks: list[Network] = []
    for item in items:
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as e:
            raise ValueError(f"{item!r} is not a network in CIDR form") from e
    return networks


def refusal_reason(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why `address` may not be connected to, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal_reason(address.ipv4_mapped, allowed)
    if any(address in net for net in allowed if net.version == address.version):
        return None
    checks = (
        (any(address in n for n in _METADATA if n.version == address.version), "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (any(address in n for n in _SHARED if n.version == address.version), "a shared (CGNAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


_LEGACY = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a numeric host such as 2130706433, 0x7f.1 or 0177.0.0.1 really means."""
    if not _LEGACY.match(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def connect_host(url: str) -> str | None:
    """The host the HTTP client will connect to (or resolve), exactly as it will see it.

    aiohttp parses a URL string with yarl, which applies IDNA/UTS #46 mapping
    to the host (fullwidth digits, circled digits and ideographic full stops
    become ASCII digits and dots) and connects to `raw_host`. Judging the name
    as written instead left `http://１２７．０．０．１/` open. ValueError when
    yarl cannot parse the URL (then aiohttp cannot fetch it either).
    """
    return yarl.URL(url).raw_host


def _looks_like_ip_literal(host: str) -> bool:
    """aiohttp's own test (helpers.is_ip_address): such a host skips the resolver."""
    return ":" in host or host.replace(".", "").isdigit()


def _literal_address(host: str) -> Address | None:
    """The address a host aiohttp treats as a literal means (None when it is a name)."""
    try:
        return ipaddress.ip_address(host.replace("%25", "%"))  # yarl keeps a zone id's %25
    except ValueError:
        return legacy_ipv4(host.rstrip("."))


def check_url(url: str, allowed: Sequence[Network] = ()) -> yarl.URL:
    """Refuse a URL before any I/O: wrong scheme, no host, or a literal refused address.

    The host judged is `connect_host(url)`, the one the client will use.
    A host that the client takes for an address but that names none we can
    read is refused too (fail closed): it would never reach the resolver.
    Returns the URL parsed as the client parses it: handing that to the client
    spares it a second parse (~4 us a request, #21).
    """
    entry = _PARSED.get(url)
    judged_for, refusal = entry.verdict
    if judged_for is not allowed:  # the verdict on its host, for these networks
        host = entry.parsed.raw_host
        assert host is not None  # _read_url refused a URL without one
        refusal = _host_refusal(host, allowed if isinstance(allowed, tuple) else tuple(allowed))
        entry.verdict = (allowed, refusal)  # one assignment: a reader sees a pair, never half
    if refusal:
        raise URLRefused(f"refused {url}: {refusal}")
    return entry.parsed


def pacing_host(url: str) -> str:
    """The host a poll of `url` is paced by (`urlsplit(url).hostname`: lower case, no
    port), from the same cache as `check_url`; "" for a URL the guard refuses."""
    try:
        return _PARSED.get(url).hostname
    except URLRefused:
        return ""


class _Parsed:
    """A URL as `check_url` reads it: parsed as the client parses it, its host as urlsplit
    reads it, and the last verdict on that host with the allowed networks it was for
    (compared by identity: Settings keeps one tuple, and hashing networks is Python)."""

    __slots__ = ("hostname", "parsed", "verdict")

    def __init__(self, parsed: yarl.URL, hostname: str) -> None:
        self.parsed = parsed
        self.hostname = hostname
        # (the allowed networks judged for, or None; the refusal for them, or None)
        self.verdict: tuple[Sequence[Network] | None, str | None] = (None, None)


def _read_url(url: str) -> _Parsed | str:
    """What check_url needs of a URL that does not depend on allow_networks: the URL as the
    client parses it and its host as urlsplit reads it, or why it is refused (pure)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
        parsed = yarl.URL(url)  # as aiohttp parses it: connect_host(url)
        host = parsed.raw_host
    except ValueError as e:
        return f"refused {url}: malformed URL ({e})"
    if parts.scheme not in ("http", "https"):
        return f"refused {url}: only http and https URLs are fetched"
    if not host or not parts.hostname:
        return f"refused {url}: no host"
    return _Parsed(parsed, parts.hostname)


class ParsedURLs:
    """A bounded cache of `_read_url`: a poller asks it for every poll, and parsing a feed
    URL twice (urlsplit, then yarl as aiohttp would) cost ~10 us of a 304 poll (#21).

    A parsed URL with what aiohttp caches on it is ~0.8 KB, so the cache holds at most
    `size` URLs (16,384: ~13 MiB). Full, it drops its newest entry for the new one: a
    poller goes through its feeds in turn, and for that order keeping the oldest is what
    still hits (an LRU would miss every time once the feeds outnumber it). Full and
    older than `lifetime` seconds, it starts over, so URLs no longer polled (feeds
    removed or moved) do not keep their places for good.
    """

    def __init__(self, size: int = 16_384, lifetime: float = 600.0) -> None:
        self.size = size
        self.lifetime = lifetime
        self._entries: dict[str, _Parsed | str] = {}
        self._renew_at = time.monotonic() + lifetime

    def get(self, url: str) -> _Parsed:
        """The parsed URL and its host; URLRefused when the URL itself is refused."""
        entry = self._entries.get(url)
        if entry is None:
            entry = _read_url(url)
            if len(self._entries) >= self.size:
                now = time.monotonic()
                if now >= self._renew_at:
                    self._entries.clear()
                    self._renew_at = now + self.lifetime
                else:
                    self._entries.popitem()
            self._entries[url] = entry
        if isinstance(entry, str):
            raise URLRefused(entry)
        return entry

    def __len__(self) -> int:
        return len(self._entries)


_PARSED = ParsedURLs()


@functools.lru_cache(maxsize=4096)
def _host_refusal(host: str, allowed: tuple[Network, ...]) -> str | None:
    """check_url's verdict on the host alone (pure): cached, since a poller asks it for
    every poll and feeds share few hosts (an address's verdict cost 4-7 us a poll, #21)."""
    address = _literal_address(host)
    if address is not None:
        reason = refusal_reason(address, allowed)
        if reason:
            return f"{address} is {reason} (see allow_networks)"
    elif _looks_like_ip_literal(host):
        return f"host {host!r} is neither a name nor a readable address"
    return None


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses names resolving to refused addresses.

    `trusted_hosts` (a configured proxy) are resolved without judgement: the
    proxy is ours, the target behind it is judged by `check_url` and by a
    resolution of the target name before the request.
    """

    def __init__(self, allowed: Sequence[Network] = (), trusted_hosts: Iterable[str] = ()) -> None:
        self._inner = DefaultResolver()
        self._allowed = list(allowed)
        self._trusted = {h.lower() for h in trusted_hosts}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower() in self._trusted:
            return results
        for result in results:
            address = ipaddress.ip_address(result["host"])
            reason = refusal_reason(address, self._allowed)
            if reason:
                raise URLRefused(f"refused {host}: it resolves to {address}, {reason} (see allow_networks)")
        return results

    async def close(self) -> None:
        await self._inner.close()
