"""JSON Feed 1.0 / 1.1 -> the same dict shape feedparser gives for XML feeds.

feedparser 6.0 reads XML formats only. Rather than a second normalizer, this
adapter maps JSON Feed onto feedparser's entry keys (`id`, `link`, `title`,
`content`, `summary`, `published_parsed`, `authors`, `tags`, `enclosures`, ...)
so that workers/normalize/record.py handles every format through one path.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.errors import ParseError

__all__ = ["looks_like_json", "parse_json_feed"]


def looks_like_json(body: bytes, content_type: str) -> bool:
    if "json" in content_type.lower():
        return True
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def _date(value: Any) -> time.struct_time | None:
    """RFC 3339 -> UTC struct_time, as feedparser's *_parsed fields are."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # JSON Feed requires an offset; assume UTC
    return moment.astimezone(UTC).timetuple()


def _people(obj: Mapping[str, Any]) -> list[dict[str, str]]:
    people = obj.get("authors")
    if not isinstance(people, list):
        single = obj.get("author")
        people = [single] if isinstance(single, dict) else []
    return [{"name": str(p.get("name") or "")} for p in people if isinstance(p, dict)]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _entry(item: Mapping[str, Any], base: str, language: str | None) -> dict[str, Any]:
    content = []
    if _str(item.get("content_html")):
        content.append({"type": "text/html", "value": item["content_html"], "base": base,
                        "language": item.get("language") or language})
    elif _str(item.get("content_text")):
        content.append({"type": "text/plain", "value": item["content_text"], "base": base,
                        "language": item.get("language") or language})
    enclosures = [
        {"href": _str(a.get("url")), "type": _str(a.get("mime_type")),
         "length": a.get("size_in_bytes")}
        for a in _list(item.get("attachments")) if isinstance(a, dict)
    ]
    image = _str(item.get("image")) or _str(item.get("banner_image"))
    tags = _list(item.get("tags"))
    entry_id = item.get("id")
    return {
        "id": str(entry_id) if entry_id not in (None, "") else "",
        "link": _str(item.get("url")) or _str(item.get("external_url")),
        "title": _str(item.get("title")),
        "title_detail": {"type": "text/plain", "language": item.get("language") or language},
        "summary": _str(item.get("summary")),
        "summary_detail": {"type": "text/plain", "base": base},
        "content": content,
        "published_parsed": _date(item.get("date_published")),
        "updated_parsed": _date(item.get("date_modified")),
        "published": _str(item.get("date_published")),
        "updated": _str(item.get("date_modified")),
        "authors": _people(item),
        "tags": [{"term": str(t)} for t in tags if isinstance(t, (str, int))],
        "enclosures": enclosures,
        "media_thumbnail": [{"url": image}] if image else [],
    }


_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    return value


def _lenient_json(body: bytes) -> Any:
    """The stdlib's reading (it accepts lone surrogate escapes), each one replaced by
    U+FFFD, so one odd character does not refuse the whole feed (#12); None if invalid."""
    try:
        return _scrubbed(json.loads(body.lstrip(b"\xef\xbb\xbf")))
    except (ValueError, RecursionError):
        return None


def parse_json_feed(body: bytes, base_url: str) -> dict[str, Any]:
    """{"version", "feed", "entries"} shaped like feedparser's result, or ParseError."""
    try:
        doc = orjson.loads(body.lstrip(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as e:
        doc = _lenient_json(body)  # orjson refuses lone surrogate escapes ("\ud800")
        if doc is None:
            raise ParseError(f"{base_url}: not a feed (invalid JSON: {e})") from e
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise ParseError(f"{base_url}: not a feed (JSON without a JSON Feed version)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError(f"{base_url}: malformed JSON Feed: 'items' is not a list")
    language = _str(doc.get("language")) or None
    feed = {
        "title": _str(doc.get("title")),
        "link": _str(doc.get("home_page_url")),
        "language": language,
        "authors": _people(doc),
    }
    entries = [_entry(i, base_url, language) for i in items if isinstance(i, dict)]
    return {"version": "json" + version.rsplit("/", 1)[-1].replace(".", ""), "feed": feed,
            "entries": entries, "bozo": False}
