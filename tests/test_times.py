"""Dates -> UTC: named zones, localized names, naive dates, nonsense -> None."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from workers.normalize.times import entry_date, is_far_future, iso_utc, parse_date, zone_for_language


@pytest.mark.parametrize(
    ("raw", "language", "expected"),
    [
        ("Thu, 16 Jan 2020 21:21:00 +0900", None, "2020-01-16T12:21:00Z"),
        ("Thu, 16 Jan 2020 21:21:00 KST", None, "2020-01-16T12:21:00Z"),
        ("Thu, 16 Jan 2020 21:21:00 JST", None, "2020-01-16T12:21:00Z"),
        ("Thu, 16 Jan 2020 07:21:00 EST", None, "2020-01-16T12:21:00Z"),
        ("Thu, 16 Jan 2020 13:21:00 CET", None, "2020-01-16T12:21:00Z"),
        ("Thu, 16 Jan 2020 17:51:00 IST", None, "2020-01-16T12:21:00Z"),
        ("16 Jan 2020 12:21 GMT", None, "2020-01-16T12:21:00Z"),
        ("2020-01-16T21:21:00+09:00", None, "2020-01-16T12:21:00Z"),
        ("2017-06-02T22:05:47-07:00", None, "2017-06-03T05:05:47Z"),
        ("2018-11-19T08:42:59.267Z", None, "2018-11-19T08:42:59Z"),
        ("Seg, 24 Set 2018 19:42:40 -0300", None, "2018-09-24T22:42:40Z"),
        ("Mar, 25 Set 2018 19:42:40 -0300", None, "2018-09-25T22:42:40Z"),
        ("Do, 16 Jan 2020 13:21:00 +0100", None, "2020-01-16T12:21:00Z"),
        # No zone: local time where the language pins one zone, else UTC.
        ("2020/1/10 14:33:00", "zh-cn", "2020-01-10T06:33:00Z"),
        ("2020/1/10 14:33:00", None, "2020-01-10T14:33:00Z"),
        ("Thu, 16 Jan 2020 21:21:00", "ko", "2020-01-16T12:21:00Z"),
        ("2020-07-14 14:00:00", "de", "2020-07-14T12:00:00Z"),  # summer time in Berlin
        ("2020-01-16 21:21", "en", "2020-01-16T21:21:00Z"),
        # Nonsense is None, never "now".
        ("", None, None),
        ("yesterday", None, None),
        ("2020-02-30T10:00:00Z", None, None),
        ("Thu, 16 Jan 2020 25:61:61 XYZ", None, None),
    ],
)
def test_parse_date(raw: str, language: str | None, expected: str | None) -> None:
    assert iso_utc(parse_date(raw, zone_for_language(language))) == expected


def test_feedparser_value_is_the_fallback_and_none_stays_none() -> None:
    parsed = time.strptime("2005-07-31 12:29:29", "%Y-%m-%d %H:%M:%S")
    assert iso_utc(entry_date("31.07.2005 12:29:29 Uhr", parsed)) == "2005-07-31T12:29:29Z"
    assert entry_date(None, None) is None
    assert entry_date(42, "not a struct") is None


def test_iso_utc_pads_years_and_rejects_overflow() -> None:
    assert iso_utc(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)) == "0999-12-31T23:59:59Z"
    assert iso_utc(time.gmtime(-30610224001)) == "0999-12-31T23:59:59Z"
    assert iso_utc(None) is None


def test_far_future_is_more_than_a_day_after_the_fetch() -> None:
    fetched = "2026-01-01T00:00:00Z"
    assert is_far_future(datetime(2026, 1, 2, 0, 0, 1, tzinfo=UTC), fetched)
    assert not is_far_future(datetime(2026, 1, 1, 23, 0, tzinfo=UTC), fetched)
    assert not is_far_future(None, fetched)
    assert not is_far_future(datetime(2100, 1, 1, tzinfo=UTC), "not a time")
