"""What an error message may quote from the outside world: short and printable. Pure.

A server that does not speak HTTP put 170 KB of its raw bytes (NULs, escape
sequences, markup) into one aiohttp error message, and from there into the
log, the feed's `last_error` and `ingest feeds` output (#12). Every message
built from a fetch or parse failure goes through `excerpt`: control and other
non-printable characters are shown as escapes (`\\x1b`), and the text is cut
to `limit` characters with a note saying how much was left out.
"""

from __future__ import annotations

__all__ = ["ERROR_QUOTE_LIMIT", "excerpt"]

ERROR_QUOTE_LIMIT = 500  # characters of an error message kept


def _printable(char: str) -> str:
    if char.isprintable() or char == " ":
        return char
    return char.encode("unicode_escape").decode("ascii")


def excerpt(text: str, limit: int = ERROR_QUOTE_LIMIT) -> str:
    """`text` made printable and at most about `limit` characters long."""
    head = text[: limit * 2]  # never escape more than we could keep
    shown = "".join(_printable(c) for c in head)
    if len(shown) <= limit and len(head) == len(text):
        return shown
    return f"{shown[:limit]}… ({len(text) - limit} more characters not shown)"
