"""What the item stream may lose, and when the service must stop taking work: pure decisions.

The stream `<ns>:items` keeps, for everyone, a best-effort window of about
`stream_maxlen` entries. Beyond that window it keeps every entry that a
*durable* group (the storage sink, each webhook, the groups named in
`durable_groups`) has not acknowledged yet: the group's oldest pending entry,
or, when nothing is pending, the entry after its last-delivered id. The cut
is therefore the older of the two: the window's start and the durable floor.

Unacknowledged entries then grow toward the hard caps (`stream_max_entries`,
`stream_max_bytes`). At 90% of either the service stops taking new work
(backpressure); below 80% it resumes. Past a cap the stream is cut anyway, and
every entry cut that way is counted (`stream_trimmed_unread`): never silent.

A durable group whose consumers have all been away for `durable_group_timeout`
while it is behind is released: it no longer holds the stream, and a forgotten
consumer cannot stop the service forever. It is protected again once one of
its consumers reads.

Everything here is a function of explicit inputs (`GroupView`s read by the
shell in ingest/deliver/trim.py, the settings, `now`), so it is table-tested
without Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ENGAGE_RATIO",
    "RELEASE_RATIO",
    "WINDOW_RATIO",
    "GroupView",
    "Limits",
    "TrimPlan",
    "Mark",
    "acked_trim_usable",
    "advance_marks",
    "after",
    "cut_of",
    "backpressure_reason",
    "floor_of",
    "id_ms",
    "id_tuple",
    "plan_trim",
    "window_cut",
    "window_mark",
    "with_mark",
]

ENGAGE_RATIO = 0.9  # backpressure engages at this share of a cap ...
RELEASE_RATIO = 0.8  # ... and lifts below this one (hysteresis: no flapping)
WINDOW_RATIO = 0.75  # the best-effort window never takes more than this share of a cap


def id_tuple(entry_id: str) -> tuple[int, int]:
    """Pure: a stream id "ms-seq" as a pair that sorts like Redis sorts ids."""
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)


def id_ms(entry_id: str) -> int:
    return id_tuple(entry_id)[0]


def after(entry_id: str) -> str:
    """Pure: the smallest id greater than `entry_id` (XTRIM MINID keeps ids >= it)."""
    ms, seq = id_tuple(entry_id)
    return f"{ms}-{seq + 1}"


@dataclass(frozen=True)
class GroupView:
    """One consumer group on the item stream, as the trimmer reads it."""

    name: str
    last_delivered: str  # last-delivered-id ("0-0": has read nothing)
    pending: int  # entries delivered, not acknowledged
    oldest_pending: str | None  # smallest pending id (XPENDING summary), None when none
    consumers: int
    idle_ms: int | None  # smallest idle time among its consumers; None without consumers


def floor_of(group: GroupView) -> str:
    """Pure: the oldest entry the group still needs (it may not exist yet)."""
    if group.pending and group.oldest_pending:
        return group.oldest_pending
    return after(group.last_delivered)


def _behind(group: GroupView, last_id: str) -> bool:
    return group.pending > 0 or id_tuple(group.last_delivered) < id_tuple(last_id)


def _away_ms(group: GroupView, first_id: str, now_ms: int) -> int:
    """How long nobody has read for the group: its freshest consumer's idle time, or,
    without consumers, the age of the oldest entry it still needs that the stream holds."""
    if group.idle_ms is not None:
        return group.idle_ms
    return max(0, now_ms - max(id_ms(floor_of(group)), id_ms(first_id)))


@dataclass(frozen=True)
class Limits:
    """The settings the decisions need (from Settings; a plain value for the tests)."""

    window: int  # stream_maxlen: entries kept for every reader
    max_entries: int  # stream_max_entries: the hard length
    max_bytes: int  # stream_max_bytes: the memory cap (0: none)
    group_timeout_ms: int  # durable_group_timeout


@dataclass(frozen=True)
class TrimPlan:
    """What one trimmer tick does."""

    protected: tuple[str, ...]  # durable groups that hold the stream
    released: tuple[str, ...]  # durable groups away past the timeout (not holding it)
    floor: str | None  # oldest entry a protected group needs; None: nothing held
    holder: str | None  # the protected group whose floor that is
    window: int  # entries to keep for everyone (stream_maxlen, shrunk to fit the caps)
    hard_length: int  # past this length the stream is cut even past the floor (counted)


def _window(limits: Limits, length: int, size: int) -> int:
    """Pure: the best-effort window, shrunk when it alone would fill a cap."""
    window = min(limits.window, int(limits.max_entries * WINDOW_RATIO))
    if limits.max_bytes and length and size:
        per_entry = size / length
        window = min(window, int(limits.max_bytes * WINDOW_RATIO / per_entry))
    return max(window, 1)


def _hard_length(limits: Limits, length: int, size: int) -> int:
    hard = limits.max_entries
    if limits.max_bytes and length and size > limits.max_bytes:
        hard = min(hard, int(length * limits.max_bytes / size))
    return max(hard, 1)


def plan_trim(groups: Sequence[GroupView], durable: frozenset[str], first_id: str, last_id: str,
              length: int, size: int, limits: Limits, now_ms: int) -> TrimPlan:
    """Pure: which durable groups hold the stream, how far it may be cut, the caps.
    `first_id`, `last_id`: the stream's oldest and newest entries ("0-0" when empty)."""
    protected: list[GroupView] = []
    released: list[str] = []
    for g in groups:
        if g.name not in durable:
            continue
        if _behind(g, last_id) and _away_ms(g, first_id, now_ms) >= limits.group_timeout_ms:
            released.append(g.name)
        else:
            protected.append(g)
    holder = min(protected, key=lambda g: id_tuple(floor_of(g)), default=None)
    return TrimPlan(
        protected=tuple(sorted(g.name for g in protected)), released=tuple(sorted(released)),
        floor=floor_of(holder) if holder else None, holder=holder.name if holder else None,
        window=_window(limits, length, size), hard_length=_hard_length(limits, length, size),
    )


def backpressure_reason(length: int, size: int, limits: Limits, engaged: bool,
                        holder: str | None) -> str | None:
    """Pure: why the service must stop taking work now, or None.

    Engages at ENGAGE_RATIO of a cap and, once engaged, holds until both are
    under RELEASE_RATIO, so that the pollers do not flap around the line."""
    ratio = RELEASE_RATIO if engaged else ENGAGE_RATIO
    who = f"; group {holder!r} has not acknowledged them" if holder else ""
    if length >= limits.max_entries * ratio:
        return (f"the item stream holds {length} entries, near stream_max_entries "
                f"({limits.max_entries}){who}")
    if limits.max_bytes and size >= limits.max_bytes * ratio:
        return (f"the item stream uses {size / 2**20:.1f} MiB, near stream_max_bytes "
                f"({limits.max_bytes / 2**20:.1f} MiB){who}")
    return None


def acked_trim_usable(version: tuple[int, ...], groups: Sequence[str], protected: Sequence[str]) -> bool:
    """Pure: may one `XTRIM ... ACKED` (Redis 8.2+) do the whole cut?

    ACKED keeps every entry some group has not acknowledged, whichever group:
    right only when every group on the stream is a protected durable group
    (a plain group or a released one would then hold the stream too)."""
    return version >= (8, 2) and bool(groups) and set(groups) == set(protected)


# Where the window starts, without reading entries (#20). Redis counts no positions
# between ids, and reading entries to find the cut costs ~40-75 µs each in a script
# (measured: whole records copied into Lua). So the trimmer keeps marks: at each tick,
# the stream's last id, and how many entries have been appended after it since, from
# the stream's length between ticks. The window starts after the newest mark with at
# least `window` entries after it; entries removed by anyone else only make the counts
# low, so the cut errs towards keeping more. A burst between two ticks leaves marks far
# apart: the trimmer then reads the ids of at most REFINE entries after the mark (in C,
# not in a script) and marks where the window really starts.
Mark = tuple[str, int]  # (an id the stream ended at, entries appended after it since)


def advance_marks(marks: Sequence[Mark], appended: int, last_id: str, step: int) -> tuple[Mark, ...]:
    """Pure: the marks after `appended` more entries, with a new one at `last_id` once
    `step` entries came after the newest (bounds the marks to ~window / step)."""
    grown = tuple((mark_id, n + appended) for mark_id, n in marks)
    if not grown or (grown[-1][1] >= step and id_tuple(last_id) > id_tuple(grown[-1][0])):
        grown += ((last_id, 0),)
    return grown


def window_mark(marks: Sequence[Mark], window: int) -> Mark | None:
    """Pure: the newest mark with at least `window` entries after it, or None (then the
    window's start is unknown and nothing is cut)."""
    eligible = [m for m in marks if m[1] >= window]
    return eligible[-1] if eligible else None


def window_cut(marks: Sequence[Mark], window: int) -> str | None:
    """Pure: the first id the window may start at (XTRIM MINID), or None."""
    mark = window_mark(marks, window)
    return after(mark[0]) if mark else None


def with_mark(marks: Sequence[Mark], mark: Mark) -> tuple[Mark, ...]:
    """Pure: the marks with one more (found by reading ids after a burst), in id order."""
    return tuple(sorted({*marks, mark}, key=lambda m: id_tuple(m[0])))


def cut_of(floor: str | None, window_start: str | None) -> str | None:
    """Pure: the id the stream is cut at: the older of the window's start and the floor."""
    if window_start is None:
        return None
    if floor is None:
        return window_start
    return min(floor, window_start, key=id_tuple)
