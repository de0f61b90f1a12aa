"""Coverage-guided fuzzing of one document through every pure worker stage (atheris).

The contract is `tests.fuzz.target.check_document`: ParseError is the only
exception allowed, every record serializes, dates are ISO UTC or null, caps
hold. The first input is read as the body; a leading byte picks the
Content-Type header, so XML, JSON Feed and HTML paths are all reached.

    .venv/bin/pip install atheris            # or: pip install -e '.[fuzz]'
    mkdir -p /tmp/feed-corpus && cp ../shared/fixtures/feeds/* /tmp/feed-corpus/
    .venv/bin/python tests/fuzz/atheris_feed.py /tmp/feed-corpus -max_len=65536 \\
        -rss_limit_mb=2048 -timeout=20 -max_total_time=3600

A crash writes `crash-<sha1>` in the working directory; replay it with
`.venv/bin/python tests/fuzz/atheris_feed.py crash-<sha1>`, then add the input
as a case in tests/test_hostile.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import atheris  # noqa: E402 - after the path setup, so the repository imports

with atheris.instrument_imports():
    from tests.fuzz.target import check_document

__all__ = ["test_one_input"]

_TYPES = ["", "application/rss+xml", "application/feed+json", "text/html; charset=utf-8",
          "text/xml; charset=iso-8859-1", "application/json"]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    content_type = _TYPES[data[0] % len(_TYPES)]
    check_document(data[1:], {"content-type": content_type} if content_type else {})


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
