"""Feed dates -> ISO 8601 UTC strings. Times are never invented: no date stays None.

feedparser already parses every date format it knows and converts it to a UTC
struct_time honouring the source offset (e.g. +0900 for KST); we only format.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime

__all__ = ["iso_utc"]


def iso_utc(parsed: time.struct_time | None) -> str | None:
    """A UTC struct_time as "YYYY-MM-DDTHH:MM:SSZ"; None stays None, nonsense becomes None."""
    if parsed is None:
        return None
    try:
        moment = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
