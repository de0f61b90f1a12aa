"""Authors from entry, feed or byline; the closing agency credit as `source`."""

from __future__ import annotations

import pytest

from workers.normalize.authors import authors_of, byline_names, closing_credit, source_of


@pytest.mark.parametrize(
    ("paragraphs", "names"),
    [
        (["By YonhapPublished : Jan. 16, 2020 - 21:21", "South Korea ..."], ["Yonhap"]),
        (["By Yonhap"], ["Yonhap"]),
        (["By Kim Eun-jung and Lee Min-ji"], ["Kim Eun-jung", "Lee Min-ji"]),
        (["By AP | 3 hours ago"], ["AP"]),
        (["SEOUL -- text", "By Jane Doe, Reuters"], ["Jane Doe", "Reuters"]),
        (["By the way, this is a story."], []),
        (["Bylines are not names"], []),
        (["Text.", "Text.", "By Someone Late"], []),  # only the first two paragraphs
        ([], []),
    ],
)
def test_byline_names(paragraphs: list[str], names: list[str]) -> None:
    assert byline_names(paragraphs) == names


def test_entry_then_feed_then_byline() -> None:
    text = ["By Yonhap", "Story."]
    assert authors_of({"authors": [{"name": "A"}, {"name": "B"}]}, {"author": "F"}, text) == [
        "A",
        "B",
    ]
    assert authors_of({}, {"authors": [{"name": "Feed Desk"}]}, text) == ["Feed Desk"]
    assert authors_of({}, {}, text) == ["Yonhap"]
    # RSS "email (Name)" and "Name <email>"; an address alone is no name.
    assert authors_of(
        {"author": "desk@wire.example (News Desk)", "authors": [{"name": "ple (News Desk"}]}, {}, []
    ) == ["News Desk"]
    assert authors_of({"author": "Jane Doe <jane@ex.com>"}, {}, []) == ["Jane Doe"]
    assert (
        authors_of({"author": "jane@ex.com", "authors": [{"email": "jane@ex.com"}]}, {}, []) == []
    )


@pytest.mark.parametrize(
    ("last", "credit"),
    [
        ("... in Beijing last month. (Yonhap)", "Yonhap"),
        ("... the ministry said. (AP)", "AP"),
        ("... he said.\u201d (Reuters/AFP)", "Reuters/AFP"),
        ("(Yonhap)", "Yonhap"),  # a credit paragraph of its own
        ("the agency said (Korea Central News Agency)", None),  # no sentence end before it
        ("... end. (Korea Central News Agency)", "Korea Central News Agency"),
        ("... called Terminal High Altitude Area Defense (THAAD)", None),
        ("... in South Korea. (THAAD)", None),  # not an agency
        ("... die Umsetzung. (Sony)", None),  # a tag, not a credit
        ("... the end.(yonhap)", None),
        ("... the end. (AP) \n", "AP"),  # trailing space is stripped before the check
        ("... (Yonhap) reported the ministry said.", None),  # no credit at the end
    ],
)
def test_closing_credit(last: str, credit: str | None) -> None:
    assert closing_credit(["First.", last]) == credit


def test_source_falls_back_on_the_rss_source_element() -> None:
    assert source_of({"source": {"title": "Wire Service"}}, ["No credit here."]) == "Wire Service"
    assert source_of({"source": {"title": "Wire"}}, ["Text. (Yonhap)"]) == "Yonhap"
    assert source_of({"source": "junk"}, []) is None
