"""A feedparser release that renames the private helpers the fast reader reuses
costs speed, not the worker (#19 item 3).

feedparser's main branch renames `_FeedParserMixin` to `XMLParserMixin`. The
fast reader imports it (and `_cp1252`, `_urljoin`, `_parse_date`); without the
guard, `import workers.parse`, and so every worker, would fail. Each case runs
in a fresh interpreter whose feedparser has the name taken away, then parses a
feed through the ordinary entry point.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import workers.fastfeed
from tests.test_delivery import _feed

_PROGRAM = textwrap.dedent("""
    import importlib, json, sys
    module_name, attribute = sys.argv[1], sys.argv[2]
    import types
    real = importlib.import_module(module_name)
    # What the fast reader imports from, as a release that renamed the helper looks;
    # feedparser's own code keeps its module, as it would keep its renamed name.
    seen = types.ModuleType(module_name)
    seen.__dict__.update({k: v for k, v in vars(real).items() if k != attribute})
    sys.modules[module_name] = seen
    import workers.fastfeed
    from workers.parse import parse_feed_bytes
    body = sys.stdin.buffer.read()
    result = parse_feed_bytes(body, {"content-type": "application/rss+xml"}, "http://127.0.0.1/f.xml")
    print(json.dumps({"unavailable": workers.fastfeed.UNAVAILABLE,
                      "guids": [e["id"] for e in result.entries]}))
""")


@pytest.mark.parametrize(("module", "attribute"), [
    ("feedparser.mixin", "_FeedParserMixin"),
    ("feedparser.html", "_cp1252"),
    ("feedparser.urls", "_urljoin"),
    ("feedparser.datetimes", "_parse_date"),
])
def test_a_renamed_feedparser_helper_falls_back_on_feedparser(module: str, attribute: str) -> None:
    done = subprocess.run([sys.executable, "-c", _PROGRAM, module, attribute], input=_feed(3, "c"),
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert attribute in out["unavailable"]
    assert out["guids"] == ["c0", "c1", "c2"]
    assert b"fast feed reader off" in done.stderr


def test_the_installed_feedparser_has_every_helper() -> None:
    assert workers.fastfeed.UNAVAILABLE is None
