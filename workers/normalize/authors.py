"""Who wrote a story and who it is credited to, from the entry, the feed or the text. Pure.

Order for `authors`: the entry's own (Atom author, dc:creator, JSON Feed
authors), else the feed's, else a byline at the top of the text ("By Yonhap",
"By Kim Eun-jung and Lee Min-ji"). Wire copies often drop the metadata but
keep the byline, so the text is the last resort, never the first.

`source` is the agency or outlet a story is credited to: a closing credit in
parentheses after the last sentence ("... last month. (Yonhap)"), else the
RSS <source> element's title. A credit must name a news agency (the list
below, or "... News Agency/Service"): blogs and IT sites close with a tag in
parentheses too ("... die Umsetzung. (Sony)"), and that is not a source. The
credit must follow sentence-ending punctuation, so an acronym in parentheses
inside a sentence ("... Area Defense (THAAD), in South Korea.") is never one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from workers.normalize.clean import plain_text

__all__ = ["authors_of", "byline_names", "closing_credit", "source_of"]

_NAME_WORD = (
    r"(?!(?:Published|Updated|Posted)\b)(?:[A-Z][\w'’.-]*|de|da|van|von|der|del|la|le|bin|al)"
)
_NAME = rf"[A-Z][\w'’.-]*(?:\s+{_NAME_WORD}){{0,4}}"
_BYLINE = re.compile(
    rf"^By\s+(?P<names>{_NAME}(?:\s*(?:,|and|&)\s*{_NAME}){{0,3}})"
    r"(?=\s*(?:$|[|,;:–—-]|\(|Published\b|Updated\b|Posted\b|\d))"
)
# "By YonhapPublished : Jan. 16" (a page's byline and dateline run together).
_GLUED = re.compile(r"(?<=[a-z])(?=(?:Published|Updated|Posted)\b)")
_SPLIT_NAMES = re.compile(r"\s*(?:,|\band\b|&)\s*")
_CREDIT = re.compile(
    r"(?<=[.!?\"'”’])\s*\("
    r"(?P<credit>[A-Z][A-Za-z&.' -]{1,40}(?:\s*/\s*[A-Z][A-Za-z&.' -]{1,40})*)\)$"
)
_BYLINE_MAX_CHARS = 200
_AGENCIES = frozenset(
    a.lower()
    for a in (
        "Yonhap",
        "AP",
        "Associated Press",
        "AFP",
        "Agence France-Presse",
        "Reuters",
        "Xinhua",
        "Kyodo",
        "Jiji",
        "dpa",
        "EFE",
        "ANSA",
        "Bloomberg",
        "UPI",
        "PTI",
        "IANS",
        "ANI",
        "TASS",
        "RIA Novosti",
        "Interfax",
        "Anadolu",
        "Bernama",
        "Antara",
        "CNA",
        "NHK",
        "KCNA",
        "Newsis",
        "News1",
        "APA",
        "SDA",
        "Keystone-SDA",
        "Belga",
        "Lusa",
        "Europa Press",
        "PA",
        "AAP",
        "CP",
        "Canadian Press",
        "KNA",
        "epd",
        "CTK",
        "PAP",
        "MTI",
        "NTB",
        "TT",
        "Ritzau",
        "STT",
        "ANP",
        "Agencia Brasil",
        "Xinhua News Agency",
        "Yonhap News Agency",
        "Kyodo News",
        "Nikkei",
    )
)
_AGENCY_PATTERN = re.compile(
    r"\b(?:News Agency|News Service|Presse?agentur|Press Agency)$", re.IGNORECASE
)
_EMAIL_THEN_NAME = re.compile(r"^\s*[^\s()<>]+@[^\s()<>]+\s*\((?P<name>[^()]+)\)\s*$")
_NAME_THEN_EMAIL = re.compile(r"^\s*(?P<name>[^<>()@]+?)\s*<[^<>\s]+@[^<>\s]+>\s*$")


def _names(people: Any) -> list[str]:
    names: list[str] = []
    for person in people if isinstance(people, list) else []:
        if not isinstance(person, Mapping) or not isinstance(person.get("name"), str):
            continue
        name = plain_text(person["name"])
        if name and name not in names:
            names.append(name)
    return names


def _declared(obj: Mapping[str, Any]) -> list[str]:
    """Declared names. RSS writes "email (Name)" or "Name <email>": feedparser's own split
    of that string breaks on long top-level domains ("ple (News Desk"), so a single
    author in that form is read here; an address alone is not a name."""
    author = obj.get("author")
    people = obj.get("authors")
    if isinstance(author, str) and (not isinstance(people, list) or len(people) <= 1):
        match = _EMAIL_THEN_NAME.match(author) or _NAME_THEN_EMAIL.match(author)
        if match:
            name = plain_text(match.group("name"))
            return [name] if name else []
    names = [n for n in _names(people) if "@" not in n]
    if not names and isinstance(author, str) and author.strip() and "@" not in author:
        names = [plain_text(author)]
    return names


def byline_names(paragraphs: Sequence[str]) -> list[str]:
    """Names from a "By ..." line at the top of the text (first two paragraphs), else []."""
    for paragraph in paragraphs[:2]:
        head = _GLUED.sub(" ", paragraph[:_BYLINE_MAX_CHARS])
        match = _BYLINE.match(head)
        if match:
            return [n for n in _SPLIT_NAMES.split(match.group("names").strip()) if n]
    return []


def authors_of(
    entry: Mapping[str, Any], feed: Mapping[str, Any], paragraphs: Sequence[str]
) -> list[str]:
    """The entry's authors, else the feed's, else the text's byline."""
    return _declared(entry) or _declared(feed) or byline_names(paragraphs)


def closing_credit(paragraphs: Sequence[str]) -> str | None:
    """ "Yonhap" for a story ending "... last month. (Yonhap)"; None without such a credit."""
    if not paragraphs:
        return None
    last = paragraphs[-1].strip()
    if not last.endswith(")"):
        # The pattern ends in "\)$": without this, every story's last paragraph was
        # searched position by position (~20 µs an entry) to find nothing.
        return None
    match = _CREDIT.search(last) or _CREDIT.search("." + last)  # or a paragraph of its own
    if match is None:
        return None
    credit = match.group("credit").strip()
    names = [n.strip() for n in credit.split("/")]
    if all(n.lower() in _AGENCIES or _AGENCY_PATTERN.search(n) for n in names):
        return credit
    return None


def source_of(entry: Mapping[str, Any], paragraphs: Sequence[str]) -> str | None:
    """The credited agency, else the RSS <source> title, else None."""
    credit = closing_credit(paragraphs)
    if credit:
        return credit
    source = entry.get("source")
    if isinstance(source, Mapping) and isinstance(source.get("title"), str):
        title = plain_text(source["title"])
        return title or None
    return None
