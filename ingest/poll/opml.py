"""OPML text <-> feed entries. Pure.

OPML files come from users and other tools, so they are read with
defusedxml (no entity expansion bombs, no external entities). Nested
outlines are flattened; an outline's enclosing folder titles and its
`category` attribute become tags. Export writes OPML 2.0 that `read_opml`
reads back to the same URLs, titles and tags.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

__all__ = ["OPMLEntry", "OPMLError", "read_opml", "write_opml"]


class OPMLError(ValueError):
    """The file is not OPML we can read."""


@dataclass(frozen=True)
class OPMLEntry:
    url: str  # xmlUrl
    title: str = ""
    tags: tuple[str, ...] = ()
    interval: float = 0  # our own extension attribute, written by export


def _tags(outline: ET.Element, folders: tuple[str, ...]) -> tuple[str, ...]:
    tags = list(folders)
    for part in (outline.get("category") or "").replace("/", ",").split(","):
        part = part.strip()
        if part and part not in tags:
            tags.append(part)
    return tuple(tags)


def _walk(parent: ET.Element, folders: tuple[str, ...], out: list[OPMLEntry]) -> None:
    for outline in parent.findall("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        title = (outline.get("title") or outline.get("text") or "").strip()
        if url:
            try:
                interval = float(outline.get("ingestInterval") or 0)
            except ValueError:
                interval = 0
            out.append(OPMLEntry(url=url, title=title, tags=_tags(outline, folders), interval=interval))
        else:
            _walk(outline, folders + ((title,) if title else ()), out)


def read_opml(data: bytes | str) -> list[OPMLEntry]:
    """Every feed outline (with an xmlUrl) of an OPML document, in order."""
    try:
        root = SafeET.fromstring(data)
    except (ET.ParseError, DefusedXmlException) as e:
        raise OPMLError(f"not readable OPML: {e}") from e
    if root.tag != "opml":
        raise OPMLError(f"not OPML: the root element is <{root.tag}>")
    body = root.find("body")
    if body is None:
        raise OPMLError("not OPML: no <body>")
    entries: list[OPMLEntry] = []
    _walk(body, (), entries)
    return entries


def write_opml(entries: Iterable[OPMLEntry], title: str = "ingest feeds") -> str:
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(datetime.now(UTC))
    body = ET.SubElement(root, "body")
    for entry in entries:
        attrs = {"type": "rss", "text": entry.title or entry.url, "title": entry.title or entry.url,
                 "xmlUrl": entry.url}
        if entry.tags:
            attrs["category"] = ",".join(entry.tags)
        if entry.interval:
            attrs["ingestInterval"] = f"{entry.interval:g}"
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
