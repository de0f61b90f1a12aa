"""Canonical URLs: one spelling per resource, so ids and dedup do not depend on
how a publisher happened to write a link that day.

url-normalize does the RFC 3986 work (case, default ports, percent-encoding,
dot segments). Its own parameter filter is an allow-list that drops every
parameter it does not know (`?id=123` included), which would merge different
articles, so tracking parameters are removed here by a deny-list instead, and
the fragment is dropped. Pure functions.
"""

from __future__ import annotations

import functools
import importlib
import re
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit

from url_normalize import url_normalize

__all__ = ["absolute_url", "canonical_url", "http_url", "is_tracking_parameter", "strip_tracking"]

# url-normalize runs the host through IDNA (UTS 46) on every call, about 40% of
# its cost, although a feed's links share a handful of hosts. Its normalize_host
# is a pure function of the host string, so it is memoized where url_normalize
# looks it up (#9). Should a later url-normalize move it, nothing breaks: the
# name is simply not found and every call pays the full price again.
# (The package's url_normalize attribute is the function, so the module is imported by name.)
_url_normalize_module = importlib.import_module("url_normalize.url_normalize")
_normalize_host = getattr(_url_normalize_module, "normalize_host", None)
if callable(_normalize_host):
    setattr(_url_normalize_module, "normalize_host", functools.lru_cache(maxsize=4096)(_normalize_host))  # noqa: B010

# Parameters that identify a campaign, a click or a share, never the article.
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|gclsrc|dclid|gbraid|wbraid|msclkid|yclid|twclid|ttclid|igshid|"
    r"mc_cid|mc_eid|_ga|_gl|_hsenc|_hsmi|mkt_tok|oly_anon_id|oly_enc_id|vero_id|rb_clickid|"
    r"s_cid|ncid|ocid|cmpid|at_medium|at_campaign|at_custom\d|wt\.mc_id|ref_src|ref_url|"
    r"wt_mc|wt_zmc|sr_share|spm|__twitter_impression|feedType|feedName)$",
    re.IGNORECASE,
)


# Generic names that mark the click as coming from the feed only when their value
# says so: Medium's "?source=rss-b1f3d322dadf------2", "?ref=rss", "?from=feed".
# "?source=tokyo" or "?ref=42" may select content and is kept.
_FEED_MARKER_NAMES = frozenset({"source", "src", "ref", "from", "origin", "via", "cmp"})
_FEED_MARKER_VALUE = re.compile(
    r"^(?:rss|feed|atom|newsfeed|feedburner)(?:$|[-_.:/|+])", re.IGNORECASE
)


def is_tracking_parameter(name: str, value: str = "") -> bool:
    """True for a parameter that records how the reader arrived, never what they read."""
    if _TRACKING.match(name):
        return True
    return name.lower() in _FEED_MARKER_NAMES and bool(_FEED_MARKER_VALUE.match(value))


def strip_tracking(url: str) -> str:
    """`url` without tracking query parameters; other parameters keep their order."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not is_tracking_parameter(k, v)]
    return urlunsplit(parts._replace(query=urlencode(kept)))


# What a browser strips from both ends of a URL (WHATWG: C0 controls and space), and
# what str.strip() strips (other whitespace): "\x01javascript:" is javascript.
_EDGES = re.compile(r"^[\s\x00-\x20]+|[\s\x00-\x20]+$")


def absolute_url(link: str | None, base: str | None) -> str | None:
    """`link` (its ends stripped as a browser would) resolved against `base`; None if empty."""
    if not link:
        return None
    link = _EDGES.sub("", link)
    if not link:
        return None
    if base:
        try:
            return urljoin(base, link)
        except ValueError:
            return link
    return link


def http_url(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) URL as written, else None.

    Records carry only links a consumer may render safely: `javascript:`, `data:`,
    `tag:` and every other scheme become None. The scheme is judged as a browser
    reads it (urlsplit drops tabs and newlines anywhere and control characters in
    front, so "java\tscript:" is javascript), and the URL must also begin with
    "http://" or "https://" as written, so no such character can hide in front.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url if url[: len(parts.scheme) + 3].lower() == parts.scheme + "://" else None


# A URL url-normalize would leave as it is (lowercase ASCII host without a trailing
# dot, no userinfo, a port without leading zeros, a path of unreserved characters
# without empty, "." or ".." segments, name=value parameters of unreserved
# characters, no fragment): canonical_url then only removes tracking parameters,
# without url-normalize's ~20 µs. tests/test_urls.py checks the shortcut against
# the full path on generated URLs of this shape and on every fixture's links.
_UNRESERVED = r"[A-Za-z0-9._~-]"
_SIMPLE_URL = re.compile(
    r"(?P<origin>(?P<scheme>https?)://(?:[a-z0-9-]+\.)*[a-z0-9-]+(?::(?P<port>[1-9][0-9]{0,4}))?)"
    rf"(?P<path>(?:/(?!\.\.?(?:[/?]|\Z)){_UNRESERVED}+)+/?|/)"
    rf"(?:\?(?P<query>{_UNRESERVED}+={_UNRESERVED}*(?:&{_UNRESERVED}+={_UNRESERVED}*)*))?\Z"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _simple_canonical(url: str) -> str | None:
    """canonical_url of a URL of the simple shape above; None for any other URL."""
    match = _SIMPLE_URL.match(url)
    if match is None or _DEFAULT_PORTS[match["scheme"]] == match["port"]:
        return None
    query = match["query"]
    if not query:
        return url
    kept = [p for p in query.split("&") if not is_tracking_parameter(*p.split("=", 1))]
    base = match["origin"] + match["path"]
    return base + "?" + "&".join(kept) if kept else base


def canonical_url(link: str | None, base: str | None = None) -> str | None:
    """Absolute, normalized, fragment and tracking parameters removed; None if empty.

    A link that cannot be normalized (a malformed host, say) is returned
    absolute but otherwise as published rather than dropped.
    """
    absolute = absolute_url(link, base)
    if absolute is None:
        return None
    simple = _simple_canonical(absolute)
    if simple is not None:
        return simple
    return _normalized(absolute)


def _normalized(absolute: str) -> str:
    """canonical_url's full path: url-normalize after the tracking parameters are removed."""
    try:
        normalized = url_normalize(strip_tracking(absolute)) or absolute
    except (ValueError, UnicodeError):
        normalized = absolute
    return urldefrag(normalized)[0]
