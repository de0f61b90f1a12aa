"""The `X-Hub-Signature` check of a content distribution request. Pure.

WebSub §8: `X-Hub-Signature: method=signature`, an HMAC of the raw body
keyed with the subscription's secret, method one of sha1, sha256, sha384,
sha512. The comparison is `hmac.compare_digest` (constant time), so timing
says nothing about how much of a forged signature was right.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["ALGORITHMS", "sign", "signature_problem"]

ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
              "sha512": hashlib.sha512}


def sign(body: bytes, secret: str, method: str = "sha256") -> str:
    """The header value a hub sends for `body` (the test hub and the benchmark use it)."""
    return f"{method}={hmac.new(secret.encode(), body, ALGORITHMS[method]).hexdigest()}"


def signature_problem(header: str | None, body: bytes, secret: str) -> str | None:
    """None when `header` signs `body` with `secret`; else the refusal reason
    ("unsigned", "bad_signature", "unknown_algorithm")."""
    if not header:
        return "unsigned"
    method, sep, given = header.strip().partition("=")
    digest = ALGORITHMS.get(method.strip().lower())
    if not sep:
        return "bad_signature"
    if digest is None:
        return "unknown_algorithm"
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode("ascii", "replace")):
        return "bad_signature"
    return None
