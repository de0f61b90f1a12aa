"""Entries read before, by their raw bytes: a changed document costs what its new entries cost (#21).

A feed that changed usually carries a few new entries among many it carried
before (the benchmark's mixed phase: 3 of 30). The fast reader builds an
entry's dict in Python (~50 µs on the farm), then the pipeline hashes its
identity and fingerprint, all to learn that 27 of 30 are as they were. Here
the worker remembers, per feed, what it got from each entry it read, keyed by
128 bits of the entry element's bytes (workers/fastfeed `Reader.raw_key`):

    <ns>:rawseen:<feed_id>   hash   raw key (16 bytes) -> item id (16 bytes)
                                    + 64 bits of the entry's fingerprint
                                    + its publication time (8 bytes, when it has one)

The next document's entries with a known raw key are not read (SkippedEntry);
their item id and fingerprint come from this map, and the dedup state is read
for them as for every entry (workers/pipeline.py): an unchanged entry is
skipped only where the state holds that very fingerprint, and its retention is
restarted as before. The map is a memo of a pure function (bytes and context ->
id, fingerprint, time), so a stale or foreign value can never be wrong, only
useless: where the state disagrees (lost, pruned, or written by a concurrent
job since), the document is read again in full, as it always was. A lost map
(a restart without persistence, eviction, the TTL) means the full path once.

What is in the key besides the bytes (`salt`): `RAW_VERSION`, the versions of
the libraries that decide an entry's dict and fingerprint, the document's URL
(an entry without a guid is identified by its link made absolute against it),
and, added by the reader, the format, the inherited language and the namespaces
in scope. Bump RAW_VERSION when workers/fastfeed, `entry_identity` or
`entry_fingerprint` (workers/normalize/record.py) change what they give for the
same bytes: a map written before then matches nothing. (A missed bump costs
little: an entry skipped by a stale key keeps the id and fingerprint it was
delivered under, which is what today's fingerprint check does for an entry
whose dict is unchanged.)

Each document whose entries the fast reader keyed replaces the map with the
entries it confirmed (delivered, or found unchanged in the state), so it holds
one document's entries (at most `max_entries_per_document`), and expires with
the item retention. The rewrite is one script on one key: atomic on a cluster
too (the key lives in the feed's slot), so it can never be left without its
TTL. A document read by feedparser (outside the fast reader's vocabulary)
neither uses nor changes the map.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import feedparser
import lxml.etree
import orjson
import redis.asyncio as aioredis

from ingest.deliver.state import digest8, field_of
from ingest.keys import Keys
from ingest.redis_conn import ScriptCall, run_script

__all__ = ["RAW_VERSION", "Known", "pack", "read", "salt", "unpack", "write", "write_call"]

# What the key of an entry's bytes stands for: bump when the fast reader, entry_identity or
# entry_fingerprint give anything else for the same bytes (the module docstring says why).
RAW_VERSION = 1
_LIBRARIES = f"feedparser {feedparser.__version__} lxml {lxml.etree.__version__} orjson {orjson.__version__}"
_TIME = struct.Struct(">d")
_HSET_CHUNK = 256  # field-value pairs per HSET inside the script (Lua's unpack has a stack limit)

# KEYS[1] the map; ARGV[1] its TTL in ms, then raw key, value, ... Replaces the map whole.
_WRITE_LUA = f"""
redis.call('DEL', KEYS[1])
local n = #ARGV
for i = 2, n, {2 * _HSET_CHUNK} do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + {2 * _HSET_CHUNK - 1}, n)))
end
if n > 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class Known:
    """What an entry read before gave: enough to check its dedup state without reading it."""

    item_id: str  # its item id (workers/normalize/record.py entry_identity)
    fingerprint: str  # 64 bits of its fingerprint, in hex (ItemState.has_fingerprint takes it)
    published: float | None  # its publication time, epoch s (adaptive polling), None when it has none
    value: bytes  # the map's value it was read from (pack(...) of the three above)


def salt(document_url: str) -> bytes:
    """The key's salt for a document fetched from `document_url` (the module docstring)."""
    return f"rawseen {RAW_VERSION} {_LIBRARIES}\n{document_url}\n".encode("utf-8", "surrogatepass")


def pack(item_id: str, fingerprint: str, published: float | None) -> bytes:
    head = field_of(item_id) + digest8(fingerprint)
    return head if published is None else head + _TIME.pack(published)


def unpack(value: bytes) -> Known | None:
    """The value of a map field, or None when it is not one this code wrote."""
    if len(value) not in (24, 32):
        return None
    published = _TIME.unpack_from(value, 24)[0] if len(value) == 32 else None
    return Known(value[:16].hex(), value[16:24].hex(), published, value)


async def read(redis: aioredis.Redis, keys: Keys, feed_id: str) -> dict[bytes, Known]:
    """The feed's map, decoded ({} when there is none); a field this code cannot read is left out."""
    raw: Mapping[bytes, bytes] = await redis.hgetall(keys.raw_seen(feed_id))  # type: ignore[misc]
    known = {}
    for key, value in raw.items():
        decoded = unpack(value)
        if decoded is not None and len(key) == 16:
            known[key] = decoded
    return known


def write_call(keys: Keys, feed_id: str, entries: Mapping[bytes, bytes],
               ttl_seconds: int) -> ScriptCall:
    """Pure: the script call (text, keys, args) of `write`, for a caller that sends it with
    other scripts in one round trip (ingest.redis_conn.run_scripts)."""
    args: list[Any] = [max(1, ttl_seconds) * 1000]
    for key, value in entries.items():
        args += [key, value]
    return _WRITE_LUA, [keys.raw_seen(feed_id)], args


async def write(redis: aioredis.Redis, keys: Keys, feed_id: str, entries: Mapping[bytes, bytes],
                ttl_seconds: int) -> None:
    """Replace the feed's map with `entries` (raw key -> pack(...)), expiring in `ttl_seconds`;
    with none, the map is deleted."""
    await run_script(redis, write_call(keys, feed_id, entries, ttl_seconds))
