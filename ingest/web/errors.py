"""Errors as JSON a person understands, with the right status.

Handlers raise `ApiError` (or aiohttp's HTTP exceptions); the middleware
turns every failure into `{"error": "...", "field": "..."}`:

    400  bad input; `field` names the parameter or JSON key
    401  missing or wrong token (ingest/web/access.py)
    404  unknown route or resource
    409  the request conflicts with the resource's state
    413  body larger than the API accepts
    500  a bug: logged with its traceback, answered without one
    503  Redis (or the store) does not answer; try again later
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ingest.errors import RedisUnavailable, StorageError

__all__ = ["ApiError", "bad_input", "error_middleware", "json_response"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def bad_input(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}", field)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return json_response(body, status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return _error(e.status, e.message, e.field)
    except web.HTTPRequestEntityTooLarge as e:
        return _error(413, f"request body too large: {e.text or e.reason}")
    except web.HTTPException as e:
        if e.content_type == "application/json" or e.status < 400:
            raise
        response = _error(e.status, e.reason if e.status == 404 else (e.text or e.reason))
        if "Allow" in e.headers:  # 405 names the methods that are allowed
            response.headers["Allow"] = e.headers["Allow"]
        return response
    except (RedisConnectionError, RedisTimeoutError, BusyLoadingError, RedisUnavailable, ConnectionError) as e:
        log.warning("%s %s: Redis unavailable: %s", request.method, request.path, e)
        return _error(503, f"Redis is not answering: {e}; try again shortly")
    except StorageError as e:
        log.warning("%s %s: store unavailable: %s", request.method, request.path, e)
        return _error(503, f"the item store is not answering: {e}")
    except Exception:  # a bug of ours: logged with its traceback, answered without one
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, "internal error (logged by the server)")
