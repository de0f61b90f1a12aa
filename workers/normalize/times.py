"""Feed dates -> UTC datetimes and ISO 8601 strings. Pure; times are never invented.

feedparser parses many date formats, but gets the ones news feeds use most
wrong in three ways that matter for a product judged on "the right time in UTC":

* named zones beyond the US ones are read as UTC: "21:21:00 KST" came out
  nine hours late (also JST, CET, IST, AEST, ...);
* "2020/1/10 14:33:00" (Dvbbs, many Chinese CMSs) came out as 2020-11-01;
* localized day and month names ("Seg, 24 Set 2018", Portuguese) gave no date.

So the raw string is read here first, by the standard library
(`email.utils.parsedate_tz` for RFC 822 after mapping names and zones to
English and numeric offsets, `datetime.fromisoformat` for ISO 8601, one regex
for the slash form). Only when none of them understands it do we fall back on
feedparser's parsed value, which still covers its long tail (asctime, W3DTF
variants, Korean/Greek/Hungarian formats, ...).

An impossible date is null, never a nearby possible one (#12): year 0000 or
a year past 9999 (parsedate_tz reads "0000" as 2000; feedparser turns 99999
into 9999-11-01), and a zone offset no place uses (`+99:99`, `-2400`,
`+9999`; beyond ±14:00 or with 60 minutes or more). `impossible_date` spots
them in the raw string, and then feedparser's reading is not used either.

A date without any zone is local time at the publisher. When the feed's
language pins one time zone (ko -> Asia/Seoul, zh-CN -> Asia/Shanghai, ...)
that zone is used; otherwise UTC, which is what feedparser assumes too.
"""

from __future__ import annotations

import calendar
import email.utils
import re
import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workers.normalize.date_names import LANGUAGE_ZONES, NAMES, ZONES

__all__ = [
    "FUTURE_TOLERANCE",
    "entry_date",
    "impossible_date",
    "is_far_future",
    "iso_utc",
    "parse_date",
    "zone_for_language",
]

# A date later than the fetch by more than this is flagged (kept, not dropped):
# zone mistakes are at most 14 h, so beyond a day the date itself is wrong
# (an embargo time, a typo in the year, an event date used as pubDate).
FUTURE_TOLERANCE = timedelta(days=1)

_ENGLISH_MONTHS = frozenset(m.lower() for m in calendar.month_abbr if m)
_WORD = re.compile(r"[^\W\d_]+\.?")
_NO_ZONE = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?\s*$")
_SLASH = re.compile(
    r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
    r"\s*(?:(?P<sign>[+-])(?P<hh>\d{2}):?(?P<mm>\d{2}))?$"
)

# Year-like numbers: 3 to 7 digits not part of a time, a zone offset or a fraction
# (8 digits are a basic ISO date such as 20250106, longer ones an epoch count).
_YEAR_TOKEN = re.compile(r"(?<![\dT:+\-.])\d{3,7}(?![\d:])")
_OFFSET = re.compile(r"(?:^|[\sT\d])[+-](\d{2}):?(\d{2})\s*$")
_MAX_OFFSET_HOURS = 14  # Kiribati, UTC+14, is the furthest any zone goes


def impossible_date(raw: str) -> bool:
    """True when `raw` names a year or zone offset no real date has (then the date is null)."""
    for token in _YEAR_TOKEN.findall(raw):
        if int(token) == 0 or int(token) > 9999:
            return True
    offset = _OFFSET.search(raw)
    if offset:
        hours, minutes = int(offset.group(1)), int(offset.group(2))
        if minutes >= 60 or hours > _MAX_OFFSET_HOURS or (hours == _MAX_OFFSET_HOURS and minutes):
            return True
    return False


@cache
def zone_for_language(language: str | None) -> tzinfo:
    """The time zone of a naive date in a feed of this language (UTC unless unambiguous)."""
    if language:
        name = LANGUAGE_ZONES.get(language.lower()) or LANGUAGE_ZONES.get(
            language.lower().split("-")[0]
        )
        if name:
            try:
                return ZoneInfo(name)
            except ZoneInfoNotFoundError:  # no tz database on this host: say UTC, never guess
                return UTC
    return UTC


def _english(raw: str) -> str:
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        key = word.lower()
        if key.rstrip(".") in _ENGLISH_MONTHS or key in (
            "mon",
            "tue",
            "wed",
            "thu",
            "fri",
            "sat",
            "sun",
        ):
            return word
        upper = word.rstrip(".").upper()
        if upper in ZONES:
            return ZONES[upper]
        return NAMES.get(key) or NAMES.get(key.rstrip(".")) or word

    return _WORD.sub(swap, raw)


def _rfc822(raw: str) -> datetime | None:
    text = _english(raw)
    if not any(m in text.lower() for m in _ENGLISH_MONTHS):
        return None
    try:
        parts = email.utils.parsedate_tz(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parts is None or parts[9] is None:
        return None
    year, month, day, hour, minute, second = parts[:6]
    try:
        moment = datetime(year, month, day, hour, minute, min(second, 59))
    except (ValueError, OverflowError):
        return None
    if _NO_ZONE.search(text):
        return moment  # naive: parsedate_tz reports a missing zone as +0000
    try:
        return moment.replace(tzinfo=timezone(timedelta(seconds=parts[9])))
    except ValueError:  # an offset of a day or more
        return None


def _iso(raw: str) -> datetime | None:
    if not raw[:4].isdigit() or len(raw) < 10 or raw[4] != "-":
        return None
    try:
        return datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        return None


def _slash(raw: str) -> datetime | None:
    match = _SLASH.match(raw)
    if not match:
        return None
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups()[:6])
    try:
        moment = datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None
    if match.group("sign"):
        minutes = int(match.group("hh")) * 60 + int(match.group("mm"))
        sign = -1 if match.group("sign") == "-" else 1
        try:
            return moment.replace(tzinfo=timezone(sign * timedelta(minutes=minutes)))
        except ValueError:  # an offset of a day or more
            return None
    return moment


def parse_date(raw: str | None, zone: tzinfo = UTC) -> datetime | None:
    """An aware UTC datetime from a date string, or None; `zone` applies to naive dates."""
    if not raw or not isinstance(raw, str):
        return None
    raw = raw.strip()
    if not raw or len(raw) > 100 or impossible_date(raw):
        return None
    moment = _iso(raw) or _slash(raw) or _rfc822(raw)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _from_struct(parsed: object) -> datetime | None:
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None


def entry_date(raw: object, parsed: object, zone: tzinfo = UTC) -> datetime | None:
    """The entry's date: our reading of the raw string, else feedparser's, else None.

    An impossible raw date is None outright: feedparser's reading of it is a
    different, possible date (9999-11-01 for year 99999), i.e. an invented one.
    """
    text = raw if isinstance(raw, str) else None
    if text is not None and impossible_date(text.strip()[:100]):
        return None
    return parse_date(text, zone) or _from_struct(parsed)


def iso_utc(moment: datetime | time.struct_time | None) -> str | None:
    """A UTC moment as "YYYY-MM-DDTHH:MM:SSZ"; None stays None, nonsense becomes None."""
    if isinstance(moment, time.struct_time):
        moment = _from_struct(moment)
    if moment is None:
        return None
    try:
        m = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    # Not strftime: "%Y" does not pad years before 1000 on glibc ("999-12-31...").
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"


def is_far_future(moment: datetime | None, fetched_at: str) -> bool:
    """True when `moment` is later than the fetch by more than FUTURE_TOLERANCE."""
    if moment is None:
        return False
    try:
        fetched = datetime.fromisoformat(fetched_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if fetched.tzinfo is None:
        fetched = fetched.replace(tzinfo=UTC)
    return moment - fetched > FUTURE_TOLERANCE
