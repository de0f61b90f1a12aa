"""What Redis remembers of an item between fetches, packed small. Pure.

Dedup state is the largest thing the service keeps: one entry per item seen
within `item_retention_days`. Before #13 each item had a key of its own,
`<ns>:item:<id>` = "version|content_hash|fingerprint" with a TTL: about 210
bytes of server memory per item, most of it the key's own overhead (the key
string, the TTL entry, the value object). Now a feed's items are fields of one
hash `<ns>:seen:<feed_id>` (docs/redis.md):

    field  16 bytes   the item id (128-bit hex) as raw bytes
    value  2 bytes    day last seen (days since 1970, big-endian)
           8 bytes    the first 64 bits of the version's content_hash
           8 bytes    the first 64 bits of the entry's raw fingerprint
           rest       the version, in decimal

64 bits decide "same content?" for one item's successive versions: a false
"same" needs a 2**-64 collision between two versions of one story. The day
replaces the per-key TTL (Redis 7.0 has no per-field expiry): the delivery
script drops fields not seen within the retention once a day per feed, and
the whole hash expires with the feed's last delivery.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct

__all__ = [
    "DAY_SECONDS",
    "ItemState",
    "NEVER_SEEN",
    "day_of",
    "digest8",
    "field_of",
    "pack_state",
    "parse_legacy",
    "parse_state",
]

DAY_SECONDS = 86400
_HEAD = struct.Struct(">H8s8s")


@dataclasses.dataclass(frozen=True)
class ItemState:
    """What Redis remembers of an item between fetches."""

    version: int  # last delivered version, 0 when never delivered
    content_hash: str  # first 64 bits (16 hex) of that version's content_hash
    fingerprint: str  # first 64 bits (16 hex) of the raw-entry fingerprint last seen
    seen_day: int = 0  # day (epoch s // 86400) the entry was last seen, 0 if unknown

    def has_fingerprint(self, fingerprint: str) -> bool:
        """Is `fingerprint` (an entry's full fingerprint) the one remembered?"""
        return bool(self.version) and self.fingerprint == digest8(fingerprint).hex()

    def needs_touch(self, now: float) -> bool:
        """Seen unchanged: restart its retention unless that was done today already."""
        return self.seen_day < day_of(now)


NEVER_SEEN = ItemState(0, "", "")


def day_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // DAY_SECONDS)


_HEX = re.compile(r"[0-9a-fA-F]{16,}")


def digest8(text: str) -> bytes:
    """64 bits of a hash given in hex (the usual case), else of the text's own hash.

    Only text that is hex throughout is cut: a hash with a mark after it (the
    "~pending" of a version waiting for its article page, publish.state_hash)
    must not digest to the same 64 bits as the hash alone.
    """
    if _HEX.fullmatch(text):
        return bytes.fromhex(text[:16])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def field_of(item_id: str) -> bytes:
    """The hash field of an item: its 128-bit hex id as 16 bytes (any other id: 16 bytes of its hash)."""
    if len(item_id) == 32:
        try:
            return bytes.fromhex(item_id)
        except ValueError:
            pass
    return hashlib.blake2b(item_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def pack_state(version: int, content_hash: str, fingerprint: str, day: int) -> bytes:
    return _HEAD.pack(day & 0xFFFF, digest8(content_hash), digest8(fingerprint)) + str(version).encode()


def parse_state(raw: bytes | None) -> ItemState:
    if not raw or len(raw) <= _HEAD.size:
        return NEVER_SEEN
    day, chash, fp = _HEAD.unpack_from(raw)
    try:
        version = int(raw[_HEAD.size:])
    except ValueError:
        return NEVER_SEEN  # unreadable state: deliver again rather than lose the item
    return ItemState(version, chash.hex(), fp.hex(), day)


def parse_legacy(raw: bytes | None) -> ItemState:
    """A state in the format before #13 ("version|content_hash|fingerprint")."""
    if not raw:
        return NEVER_SEEN
    try:
        version, content_hash, fingerprint = raw.decode().split("|", 2)
        return ItemState(int(version), digest8(content_hash).hex(), digest8(fingerprint).hex())
    except (ValueError, UnicodeDecodeError):
        return NEVER_SEEN
