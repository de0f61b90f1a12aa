"""Reading request input: query parameters, JSON bodies and page cursors, each
failure a 400 that names the field. Pure except for reading the body."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from aiohttp import web

from ingest.web.errors import bad_input

__all__ = ["decode_cursor", "encode_cursor", "int_param", "json_body", "list_field", "str_list_param"]


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_input(name, f"must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise bad_input(name, f"must be between {low} and {high}, got {value}")
    return value


def str_list_param(request: web.Request, name: str) -> tuple[str, ...]:
    """A repeatable parameter (`?tag=a&tag=b`), also comma-separated (`?tag=a,b`)."""
    return tuple(v.strip() for raw in request.query.getall(name, []) for v in raw.split(",") if v.strip())


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        raise bad_input("body", "a JSON object is required")
    raw = await request.read()  # client_max_size bounds it (413)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad_input("body", f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise bad_input("body", "must be a JSON object")
    return value


def list_field(body: dict[str, Any], name: str, required: bool = False) -> list[str] | None:
    if name not in body:
        if required:
            raise bad_input(name, "is required")
        return None
    value = body[name]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_input(name, "must be a list of non-empty strings")
    return value


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque page cursor: where the previous page ended (clients must not rely on its form)."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(request: web.Request) -> dict[str, Any]:
    """The position a `cursor` parameter names ({} on the first page)."""
    raw = request.query.get("cursor")
    if not raw:
        return {}
    try:
        value = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        value = None
    if not isinstance(value, dict) or not value:
        raise bad_input("cursor", "is not a cursor this server gave out")
    return value
