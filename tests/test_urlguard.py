"""The URL guard. Non-loopback ranges are judged without connecting, or inside a
network namespace with no route out; only loopback is ever connected to."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from ingest.errors import URLRefused
from ingest.models import Fetched, FetchFailed
from ingest.poll.fetch import conditional_get, new_session
from ingest.poll.urlguard import (
    GuardedResolver,
    check_url,
    connect_host,
    legacy_ipv4,
    parse_networks,
    refusal_reason,
)
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


# -- hosts spelled with characters IDNA maps to digits and dots (#12) ----------------------
# yarl (and so aiohttp) maps these to an ASCII IP literal and connects to it without a
# resolver; the guard must judge that literal, not the name as written.
_DIGIT_FAMILIES = {
    "fullwidth": "０１２３４５６７８９",
    "circled": "⓪①②③④⑤⑥⑦⑧⑨",
    "superscript": "⁰¹²³⁴⁵⁶⁷⁸⁹",
    "subscript": "₀₁₂₃₄₅₆₇₈₉",
    "math bold": "".join(chr(0x1D7CE + d) for d in range(10)),
    "math double-struck": "".join(chr(0x1D7D8 + d) for d in range(10)),
    "math sans-serif": "".join(chr(0x1D7E2 + d) for d in range(10)),
    "math monospace": "".join(chr(0x1D7F6 + d) for d in range(10)),
}
_DOTS = {
    "ideographic full stop": "。", "fullwidth full stop": "．", "halfwidth ideographic full stop": "｡",
    "small full stop": "﹒", "one dot leader": "․",
}


def spellings(address: str) -> list[tuple[str, str]]:
    """(label, host) pairs: `address` (dotted IPv4) written in the whole family of disguises."""
    def digits(text: str, family: str) -> str:
        table = _DIGIT_FAMILIES[family]
        return "".join(table[int(c)] if c.isdigit() else c for c in text)

    out = [(f"{family} digits", digits(address, family)) for family in _DIGIT_FAMILIES]
    out += [(name, address.replace(".", dot)) for name, dot in _DOTS.items()]
    out += [
        ("fullwidth digits and dots", digits(address, "fullwidth").replace(".", "．")),
        ("circled digits, ideographic stops", digits(address, "circled").replace(".", "。")),
        ("fullwidth, trailing dot", digits(address, "fullwidth") + "．"),
        ("mixed families", digits(address[:4], "math bold") + digits(address[4:], "circled")),
    ]
    return out


_LOOPBACK_FORMS = [
    *spellings("127.0.0.1"),
    ("fullwidth decimal integer", "２１３０７０６４３３"),
    ("fullwidth hex, short form", "０ｘ７ｆ．１"),
    ("fullwidth short form", "１２７．１"),
    ("IPv6 with fullwidth digit", "[::１]"),
    ("IPv4-mapped IPv6, fullwidth", "[::ffff:１２７．０．０．１]"),
    ("parenthesized digits with period", "⒈⒉⒎0.0.1"),
]


@pytest.mark.parametrize(("label", "host"), _LOOPBACK_FORMS, ids=[f[0] for f in _LOOPBACK_FORMS])
def test_idna_disguised_loopback_is_refused_before_any_io(label: str, host: str) -> None:
    url = f"http://{host}/feed"
    assert connect_host(url) is not None and connect_host(url).isascii()  # type: ignore[union-attr]
    with pytest.raises(URLRefused, match="refused"):
        check_url(url)


def test_connect_host_is_what_the_client_connects_to() -> None:
    assert connect_host("http://１２７．０．０．１:8080/x") == "127.0.0.1"
    assert connect_host("http://①②⑦.⓪.⓪.①/") == "127.0.0.1"
    assert connect_host("http://127。0。0。1/") == "127.0.0.1"
    assert connect_host("http://[::１]/") == "::1"
    assert connect_host("http://Example.COM/") == "example.com"


_DIRECT = [
    *[(label, host) for label, host in spellings("127.0.0.1") if not host.endswith("．")],
    ("circled letters (a name: the resolver judges it)", "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ"),
]


@pytest.mark.parametrize(("label", "host"), _DIRECT, ids=[d[0] for d in _DIRECT])
async def test_idna_disguised_loopback_never_connects(farm: Farm, label: str, host: str) -> None:
    """Refused with the default settings; and the control: opened, the same URL does reach
    the loopback farm, so the refusal is the guard's and not a URL that goes nowhere."""
    url = farm.url("feed/a.xml", host=host)
    closed = Settings()
    session = new_session(closed)
    try:
        result = await conditional_get(session, url, closed)
    finally:
        await session.close()
    assert isinstance(result, FetchFailed) and result.refused, result
    assert "loopback" in result.error
    assert farm.hits("feed/a.xml") == []
    opened = Settings(allow_networks="127.0.0.0/8")
    session = new_session(opened)
    try:
        reached = await conditional_get(session, url, opened)
    finally:
        await session.close()
    assert isinstance(reached, Fetched), reached
    assert len(farm.hits("feed/a.xml")) == 1


@pytest.mark.parametrize(("label", "host"), spellings("127.0.0.2"), ids=[s[0] for s in spellings("127.0.0.2")])
async def test_idna_disguised_redirect_hop_is_refused(farm: Farm, label: str, host: str) -> None:
    """127.0.0.1 is allowed (the farm), 127.0.0.2 is not; the first hop redirects to a
    disguised spelling of 127.0.0.2, as UTF-8 in the Location header."""
    settings = Settings(allow_networks="127.0.0.1/32")
    session = new_session(settings)
    target = farm.url("feed/a.xml", host=host)
    try:
        result = await conditional_get(session, farm.url("to?url=" + quote(target, safe="")), settings)
    finally:
        await session.close()
    assert isinstance(result, FetchFailed) and result.refused, result
    assert "loopback" in result.error
    assert [h.path for h in farm.log] == ["/to"]  # the redirect only; the target never


# -- more URL forms (the SSRF list): userinfo, fragments, IPv6 spellings, zones --------
MORE_FORMS = [
    "http://example.com@127.0.0.1/", "http://127.0.0.1#@example.com/", "http://[::]/", "http://0/",
    "http://127.1/", "http://[0:0:0:0:0:ffff:7f00:1]/", "http://[::ffff:7f00:1]/", "http://0x7f000001/",
    "http://017700000001/", "http://127.000.000.001/", "http://[fe80::1%25eth0]/", "HTTP://127.0.0.1/",
    "http://127.0.0.1:80\\@evil.example/", "http://127.0.0.1\t/", "http://user:pass@[::1]:8080/",
    "http://[0000::1]/", "http://0.0.0.0:80/", "http://[::127.0.0.1]/",
    "https://169.254.169.254/latest/meta-data/", "http://192.168.1.1./", "http://10.0.0.1:65535/",
]


@pytest.mark.parametrize("url", MORE_FORMS)
def test_more_ssrf_forms_are_refused_before_any_io(url: str) -> None:
    with pytest.raises(URLRefused, match="refused"):
        check_url(url)


@pytest.mark.parametrize("host", ["localhost.", "127.0.0.1%09", "LOCALHOST", "127.0.0.1."])
async def test_names_the_resolver_must_judge_never_reach_the_farm(farm: Farm, host: str) -> None:
    closed = Settings()
    session = new_session(closed)
    try:
        result = await conditional_get(session, farm.url("feed/a.xml", host=host), closed)
    finally:
        await session.close()
    assert isinstance(result, FetchFailed), result
    assert farm.hits("feed/a.xml") == []
