"""How arq jobs and their results are encoded in Redis: msgpack, not pickle.

arq pickles by default, and unpickling runs code: anyone able to write one
key into our Redis (a shared or managed server, a leaked password) could run
anything in every worker. msgpack carries exactly what our jobs hold (str,
bytes bodies, numbers, lists, dicts) and nothing executable; it is also
smaller and faster than pickle for a 70 KB body.

arq stores a failed job's exception as its result. An exception is encoded
as its type name and message and comes back as `RemoteJobError`, an
IngestError, so `enqueue --wait` can still say what went wrong.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ingest.errors import IngestError

__all__ = ["RemoteJobError", "deserialize_job", "serialize_job"]

_EXCEPTION = 1  # msgpack extension type code for an exception


class RemoteJobError(IngestError):
    """An exception raised inside a job, as the job's result carries it back."""


def _encode(value: Any) -> Any:
    if isinstance(value, BaseException):
        payload = msgpack.packb([type(value).__name__, str(value)], use_bin_type=True)
        return msgpack.ExtType(_EXCEPTION, payload)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a job")


def _decode(code: int, data: bytes) -> Any:
    if code == _EXCEPTION:
        name, message = msgpack.unpackb(data, raw=False)
        return RemoteJobError(f"{name}: {message}" if message else name)
    return msgpack.ExtType(code, data)


def serialize_job(data: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(data, default=_encode, use_bin_type=True, datetime=False)
    return packed


_LONG_BYTES = 200


class _Abridged(dict[Any, Any]):
    """A map holding a long bytes value (a fetched body): arq logs every job's arguments
    with repr(), and the repr of a 70 KB body cost more than the log line is worth
    (~1% of a worker's CPU); it shows as its length instead."""

    def __repr__(self) -> str:
        shown = (f"{k!r}: <{len(v)} bytes>" if isinstance(v, bytes) and len(v) > _LONG_BYTES
                 else f"{k!r}: {v!r}" for k, v in self.items())
        return "{" + ", ".join(shown) + "}"


def _abridge(value: dict[Any, Any]) -> dict[Any, Any]:
    if any(isinstance(v, bytes) and len(v) > _LONG_BYTES for v in value.values()):
        return _Abridged(value)
    return value


def deserialize_job(data: bytes) -> dict[str, Any]:
    value = msgpack.unpackb(data, ext_hook=_decode, raw=False, strict_map_key=False,
                            object_hook=_abridge)
    if not isinstance(value, dict):
        raise ValueError("a job is a msgpack map")
    return value
