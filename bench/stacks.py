"""Summarize py-spy collapsed stacks (`--format raw`): where the samples are, by function.

Run: .venv/bin/python bench/stacks.py PROFILE [--top 40] [--match TEXT]
"self" counts samples whose innermost frame is the function; "total" counts
samples with the function anywhere on the stack (once per sample).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

__all__ = ["main"]

_LINE = re.compile(r"^(.*) (\d+)$")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--match", default="", help="only samples whose stack contains this text")
    args = p.parse_args()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in args.profile.read_text().splitlines():
        m = _LINE.match(line)
        if not m or args.match not in m.group(1):
            continue
        count = int(m.group(2))
        frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in m.group(1).split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    print(f"{samples} samples")
    print("-- total (inclusive)")
    for frame, count in total.most_common(args.top):
        print(f"{100 * count / samples:5.1f}%  {frame}")
    print("-- self")
    for frame, count in own.most_common(args.top):
        print(f"{100 * count / samples:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
