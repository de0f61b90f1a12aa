"""The codebase's own rules, checked by machine: layering, public surface, lint, types."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("ingest", "workers")
MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts)
    for package in PACKAGES for p in (REPO / package).rglob("*.py")
    if p.name != "__main__.py"
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_ingest_never_imports_workers() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(n for n in _imports(path) if n.split(".")[0] == "workers")
        for path in (REPO / "ingest").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("module", [m for m in MODULES if not m.endswith("__init__")])
def test_every_module_declares_its_public_names(module: str) -> None:
    loaded = importlib.import_module(module)
    exported = getattr(loaded, "__all__", None)
    assert exported is not None, f"{module} has no __all__"
    missing = [name for name in exported if not hasattr(loaded, name)]
    assert missing == []


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed in this environment")
    return found


def test_ruff_finds_nothing() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "ingest", "workers", "tests", "bench", "tools"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_mypy_strict_finds_nothing() -> None:
    proc = subprocess.run([_tool("mypy"), "ingest", "workers", "bench", "tools"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_packaging_uses_the_current_forms_so_installs_print_no_warnings() -> None:
    """`pip install .` and `make` (editable) print no setuptools warnings: the license is
    an SPDX expression, not the deprecated table or a License classifier, and the flat
    layout is declared, so an editable install is a .pth entry, not the import finder
    that warns "Editable installation ... may take precedence during imports".
    (Checked by hand with a fresh venv: see docs/development.md.)"""
    import tomllib

    with (REPO / "pyproject.toml").open("rb") as fh:
        project = tomllib.load(fh)
    assert isinstance(project["project"]["license"], str)
    assert not [c for c in project["project"].get("classifiers", []) if c.startswith("License ::")]
    assert project["tool"]["setuptools"]["package-dir"] == {"": "."}
    requires = project["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in requires), requires
