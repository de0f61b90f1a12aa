"""The URL guard. Non-loopback ranges are judged without connecting, or inside a
network namespace with no route out; only loopback is ever connected to."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ingest.errors import URLRefused
from ingest.models import Fetched, FetchFailed
from ingest.poll.fetch import conditional_get, new_session
from ingest.poll.urlguard import GuardedResolver, check_url, legacy_ipv4, parse_networks, refusal_reason
from ingest.settings import Settings
from tests.farm import Farm

REFUSED = [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.0.10", "private"), ("fc00::1", "private"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"), ("100.100.100.200", "metadata"),
    ("169.254.10.10", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("100.64.0.1", "shared"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "metadata"),
    ("240.0.0.1", ""), ("192.0.2.1", ""),
]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_refused_ranges(address: str, kind: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_allow_list_opens_ranges() -> None:
    allowed = parse_networks("127.0.0.0/8, 10.20.0.0/16")
    assert refusal_reason(ipaddress.ip_address("127.0.0.2"), allowed) is None
    assert refusal_reason(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert refusal_reason(ipaddress.ip_address("10.21.3.4"), allowed) is not None
    with pytest.raises(ValueError, match="nonsense"):
        parse_networks("nonsense")


@pytest.mark.parametrize(
    ("host", "address"),
    [("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
     ("167772161", "10.0.0.1"), ("012.0.0.1", "10.0.0.1"), ("example.com", None), ("1.2.3.4.5", None)],
)
def test_legacy_numeric_hosts_mean_what_inet_aton_says(host: str, address: str | None) -> None:
    got = legacy_ipv4(host)
    assert (str(got) if got else None) == address


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/",
     "http://169.254.169.254/", "file:///etc/passwd", "ftp://example.com/", "gopher://x/", "http:///nohost"],
)
def test_check_url_refuses_before_any_io(url: str) -> None:
    with pytest.raises(URLRefused, match="refused"):
        check_url(url)


async def test_resolver_judges_the_resolved_address() -> None:
    resolver = GuardedResolver()
    with pytest.raises(URLRefused, match="resolves to 127.0.0.1, a loopback address"):
        await resolver.resolve("localhost", 80)
    opened = GuardedResolver(parse_networks("127.0.0.0/8, ::1/128"))
    assert await opened.resolve("localhost", 80)
    await resolver.close()
    await opened.close()


async def test_a_loopback_feed_is_refused_unless_allowed(farm: Farm) -> None:
    closed = Settings()
    session = new_session(closed)
    result = await conditional_get(session, farm.url("feed/a.xml").replace("127.0.0.1", "localhost"), closed)
    await session.close()
    assert isinstance(result, FetchFailed) and result.refused and "loopback" in result.error
    assert farm.hits("feed/a.xml") == []  # refused before connecting
    opened = Settings(allow_networks="127.0.0.0/8")
    session = new_session(opened)
    result = await conditional_get(session, farm.url("feed/a.xml").replace("127.0.0.1", "localhost"), opened)
    await session.close()
    assert isinstance(result, Fetched)


async def test_redirect_hops_to_loopback_are_judged(farm: Farm) -> None:
    """Allowed 127.0.0.1 redirects to 127.0.0.2, which only 127.0.0.1/32 does not allow."""
    settings = Settings(allow_networks="127.0.0.1/32")
    session = new_session(settings)
    target = farm.url("feed/a.xml", host="127.0.0.2")
    result = await conditional_get(session, farm.url("to?url=" + target), settings)
    await session.close()
    assert isinstance(result, FetchFailed) and result.refused and "127.0.0.2" in result.error
    assert farm.hits("feed/a.xml") == []


def _unshare_available() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.decode().strip()}"
    return None


def test_redirects_to_private_addresses_are_refused_in_a_sealed_namespace() -> None:
    reason = _unshare_available()
    if reason:
        pytest.skip(reason)
    script = Path(__file__).parent / "netns" / "redirect_guard.py"
    proc = subprocess.run(["unshare", "-n", sys.executable, str(script)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    results = orjson.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 8
    for target, outcome in results.items():
        assert outcome["refused"], (target, outcome)
        assert "refused" in outcome["error"]
