"""What /proc says about a process tree: CPU seconds, peak and current RSS, kind.

Linux only (the benchmarks' machine). CPU of a tree counts each live
process's own time plus the time of the children it has already reaped
(cutime/cstime), so a worker process that exited is not lost and nothing is
counted twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcInfo", "cpu_seconds", "describe_tree", "tree"]

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    cmdline: str
    cpu: float  # seconds: utime + stime + cutime + cstime
    rss_mib: float  # VmRSS
    peak_mib: float  # VmHWM


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14, so index 11.
    ppid = int(fields[1])
    ticks = sum(int(f) for f in fields[11:15])
    return ppid, ticks / _TICK


def _status_mib(pid: int, name: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            total += stat[1]
    return total


def describe_tree(root: int) -> list[ProcInfo]:
    out = []
    for pid in tree(root):
        stat = _stat(pid)
        if stat is None:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = ""
        out.append(ProcInfo(pid, cmd.strip(), stat[1], _status_mib(pid, "VmRSS"), _status_mib(pid, "VmHWM")))
    return out
