"""What a user installs works, or says clearly why not (#19).

* The package without extras, installed into a fresh venv from the service lock
  (or, under `make test-latest`, from today's newest allowed versions), runs a
  job: `pip install .` once gave workers that died importing `lxml.html.clean`
  (jusText imports it, lxml 6 moved it out, nothing required it) while the test
  extras happened to bring it in.
* A worker whose code does not import stops `ingest run` with that error,
  instead of being restarted every few seconds while the service looks alive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.settings import Settings
from tests.conftest import INGEST, env_for
from tests.feedserver import FeedServer
from tests.test_delivery import _feed

REPO = Path(__file__).resolve().parent.parent
LATEST = os.environ.get("TEST_LATEST") == "1"  # `make test-latest`: no lock, newest versions


def _copy_source(into: Path) -> Path:
    """The files a source install needs, outside the checkout (a build writes egg-info beside them)."""
    source = into / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("ingest", "workers", "config"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    return source


def _run(command: list[str], timeout: float, **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done  # type: ignore[no-any-return]


@pytest.mark.timeout(600)
def test_the_package_without_extras_runs_a_job(tmp_path: Path, settings: Settings,
                                                  feed_server: FeedServer) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], 120)
    python = str(venv / "bin" / "python")
    source = _copy_source(tmp_path)
    if LATEST:
        _run([python, "-m", "pip", "install", "--quiet", str(source)], 500)
    else:
        # The venv's own pip, not upgraded: what a user following the README meets
        # (Python 3.11's bundled pip 23.2 refused the lock outright once lxml 6.2.1 was
        # out, on jusText's `lxml[html_clean]`; `--no-deps` installs the complete lock
        # without resolving it again, and `pip check` below proves it complete).
        _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes", "-r",
              str(REPO / "requirements" / "service.txt")], 500)
        _run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(source)], 300)
    _run([python, "-m", "pip", "check"], 60)  # the lock holds everything the package asks
    # Nothing of the test or bench extras came along: the service stands on its own.
    listed = _run([python, "-m", "pip", "list", "--format=freeze"], 60).stdout.lower()
    assert "pytest" not in listed and "reader==" not in listed, listed
    url = feed_server.serve("no-extras.xml", _feed(4, "x"))
    # The installed `ingest`, run from another directory: the checkout is not on its path.
    env = env_for(settings)
    worker = subprocess.Popen([str(venv / "bin" / "ingest"), "worker"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        enqueued = _run([str(venv / "bin" / "ingest"), "enqueue", url, "--wait", "--timeout", "60"], 90,
                        env=env, cwd=tmp_path)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    assert "4 new" in enqueued.stdout, enqueued.stdout + output[-3000:]
    assert "does not import" not in output


def test_a_worker_that_cannot_import_stops_the_service(tmp_path: Path, settings: Settings) -> None:
    # A package that fails at import, first on the worker's path: as trafilatura's jusText
    # did on lxml 6 without lxml-html-clean. `ingest` itself never imports it.
    shadow = tmp_path / "shadow" / "trafilatura"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        'raise ImportError("lxml.html.clean module is now a separate project lxml_html_clean")\n')
    env = {**env_for(settings), "PYTHONPATH": f"{shadow.parent}{os.pathsep}{REPO}",
           "INGEST_WORKERS": "2", "INGEST_LOG_LEVEL": "INFO"}
    began = time.monotonic()
    done = subprocess.run([*INGEST, "run"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=90)
    took = time.monotonic() - began
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-4000:]
    assert "error: the worker code does not import: ImportError: lxml.html.clean" in done.stderr, output[-4000:]
    assert "worker processes cannot start" in output
    assert "restarting in" not in output  # stopped at the first failure, not looping
    assert took < 60, output[-4000:]
