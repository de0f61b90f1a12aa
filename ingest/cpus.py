"""How many cores this process may use: what `workers = "auto"` starts.

`os.cpu_count()` counts the host's cores. In a container limited to two cores
of a 64-core host that started 64 workers, each with its own memory (the
language model alone is ~125 MB), fighting over two cores. The usable count is
the smallest of the CPU affinity mask (taskset, cpusets) and the cgroup v2 CPU
quota (`docker run --cpus`, a Kubernetes limit), rounded up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["quota_cores", "usable_cores"]

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def quota_cores(cpu_max: str) -> int | None:
    """Pure: the cores a cgroup v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD") allows; None: no limit."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def usable_cores() -> int:
    """Cores this process may run on: affinity, then the cgroup quota, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    try:
        limit = quota_cores(CGROUP_CPU_MAX.read_text())
    except OSError:
        limit = None
    return max(1, min(cores, limit) if limit else cores)
