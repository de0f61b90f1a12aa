"""The item record on the stream: its JSON, or the same JSON as a zstd frame (#21).

The stream is what Redis keeps (`stream_maxlen` entries), and a record's text
comes three times (content_html, content_text, summary): as JSON an entry costs
3-7 KB. Compressed with zstd and a dictionary trained on records it costs
0.7-1 KB, and decompresses in ~5 µs, losslessly: the consumer gets the record's
JSON byte for byte, so no field changes and nothing is dropped.

The value of the entry's one field, `item`, says which it is by its first byte:

* `{`: the record's JSON (`stream_record = "json"`, and every entry written
  before #21, and what `ingest dead retry` puts back);
* the zstd magic number (28 B5 2F FD): a zstd frame of the record's JSON
  (`stream_record = "zstd"`), compressed with the dictionary whose id its frame
  header carries. The dictionaries ship in ingest/data/record-<id>.zdict and are
  copied to Redis under `<ns>:dict:<id>` before the first frame made with them,
  for consumers in other languages (docs/consumers.md).

Pub/Sub channels, the sinks, webhooks, `ingest subscribe` and the HTTP live
stream always carry the JSON: only the stream's stored copy is compressed.
A dictionary once shipped never changes (entries written with it must stay
readable); a better one is a new id in a new file (bench/train_record_dict.py).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import zstandard

__all__ = [
    "DEFAULT_STREAM_RECORD",
    "DICT_ID",
    "MAX_RECORD_BYTES",
    "STREAM_RECORDS",
    "ZSTD_MAGIC",
    "decode_item",
    "dictionary",
    "encode_item",
    "frame_dict_id",
    "readable_item",
]

log = logging.getLogger(__name__)

STREAM_RECORDS = ("json", "zstd")
DEFAULT_STREAM_RECORD = "zstd"
DICT_ID = 20261205  # the dictionary new entries are compressed with
LEVEL = 3  # level 6 is 5% smaller and 4x slower to compress (docs/performance.md)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# A frame claiming more than this is refused unread (records are capped far below:
# `max_content_chars`), so a damaged or hostile entry cannot make a consumer allocate it.
MAX_RECORD_BYTES = 64 * 1024 * 1024
_DATA = Path(__file__).resolve().parents[1] / "data"
# zstandard's (de)compressors must not be shared between threads at once.
_local = threading.local()


@functools.cache
def dictionary(dict_id: int) -> bytes:
    """The shipped dictionary with this id; ValueError when this version has none."""
    path = _DATA / f"record-{dict_id}.zdict"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"zstd dictionary {dict_id} is not known to this version of ingest "
                         f"(written by a newer one? its bytes are in Redis under <ns>:dict:{dict_id})") from None


@functools.cache
def _dict(dict_id: int) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(dictionary(dict_id), dict_type=zstandard.DICT_TYPE_FULLDICT)


def _compressor() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(
            level=LEVEL, dict_data=_dict(DICT_ID), write_checksum=False, write_content_size=True)
    return compressor


def _decompressor(dict_id: int) -> zstandard.ZstdDecompressor:
    cache: dict[int, zstandard.ZstdDecompressor] = getattr(_local, "decompressors", None) or {}
    _local.decompressors = cache
    if dict_id not in cache:
        cache[dict_id] = zstandard.ZstdDecompressor(dict_data=_dict(dict_id) if dict_id else None)
    return cache[dict_id]


def encode_item(record_json: bytes, stream_record: str) -> bytes:
    """Pure: the stream's `item` value for a record's JSON under the `stream_record` setting."""
    if stream_record == "zstd":
        return _compressor().compress(record_json)
    return record_json


def frame_dict_id(value: bytes) -> int:
    """The dictionary id a zstd frame names (0: none); ValueError if it is no zstd frame."""
    try:
        return int(zstandard.get_frame_parameters(value).dict_id)
    except zstandard.ZstdError as e:
        raise ValueError(f"unreadable item: not JSON and not a zstd frame ({e})") from None


def decode_item(value: bytes) -> bytes:
    """Pure: the record's JSON from a stream entry's `item` value, whichever form it has.

    Raises ValueError saying what is wrong (an unknown dictionary, a damaged frame):
    consumers count and dead-letter it like any unreadable record."""
    if not value.startswith(ZSTD_MAGIC):
        return value
    dict_id = frame_dict_id(value)
    size = zstandard.frame_content_size(value)
    if not 0 <= size <= MAX_RECORD_BYTES:
        raise ValueError(f"unreadable item: zstd frame of {'unknown' if size < 0 else size} bytes "
                         f"(at most {MAX_RECORD_BYTES} are read)")
    try:
        return bytes(_decompressor(dict_id).decompress(value))
    except zstandard.ZstdError as e:
        raise ValueError(f"unreadable item: damaged zstd frame ({e})") from None


def readable_item(entry_id: str, fields: Mapping[bytes, bytes]) -> bytes | None:
    """The record's JSON of an entry read without a consumer group, or None, logged.

    A replay (`ingest subscribe --from`, the HTTP live stream) has no group to
    dead-letter an unreadable entry in: it skips it and says which."""
    try:
        return decode_item(fields.get(b"item", b""))
    except ValueError as e:
        log.warning("stream entry %s skipped: %s", entry_id, e)
        return None
