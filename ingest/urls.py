"""Canonical URLs: one spelling per resource, so ids and dedup do not depend on
how a publisher happened to write a link that day.

url-normalize does the RFC 3986 work (case, default ports, percent-encoding,
dot segments). Its own parameter filter is an allow-list that drops every
parameter it does not know (`?id=123` included), which would merge different
articles, so tracking parameters are removed here by a deny-list instead, and
the fragment is dropped. Pure functions.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit

from url_normalize import url_normalize

__all__ = ["absolute_url", "canonical_url", "http_url", "is_tracking_parameter", "strip_tracking"]

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


def canonical_url(link: str | None, base: str | None = None) -> str | None:
    """Absolute, normalized, fragment and tracking parameters removed; None if empty.

    A link that cannot be normalized (a malformed host, say) is returned
    absolute but otherwise as published rather than dropped.
    """
    absolute = absolute_url(link, base)
    if absolute is None:
        return None
    try:
        normalized = url_normalize(strip_tracking(absolute)) or absolute
    except (ValueError, UnicodeError):
        normalized = absolute
    return urldefrag(normalized)[0]
