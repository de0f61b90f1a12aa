"""The dependency locks: `make lock` writes them, `make lock-check` (and the test suite) checks them.

Why two files: `make run` and the container image install the service alone
(`requirements/service.txt`); `make test` and `make bench` install the service
plus the test and bench extras (`requirements/dev.txt`). Both pin every package,
transitive ones included, with the hashes of every file PyPI has for that
version, and are resolved for every platform and Python >= 3.11 at once
(`uv pip compile --universal`), so one lock serves Linux, macOS and Windows
(uvloop carries its `sys_platform != 'win32'` marker). Installing needs only
pip: `pip install --no-deps --require-hashes -r requirements/service.txt`.

The service lock is resolved with the dev lock as its constraint, so the service
runs on exactly the versions the suite tested.

Each file starts with a digest of what pyproject.toml asks for (dependencies,
extras, requires-python). `--check` recomputes it and also checks that every
pinned package satisfies every requirement naming it, without a network: a
pyproject edit that the lock does not follow fails CI (tests/test_lock.py runs
the same check).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCKS = REPO / "requirements"
SERVICE = LOCKS / "service.txt"
DEV = LOCKS / "dev.txt"
DEV_EXTRAS = ("test", "bench")
PYTHON = "3.11"
DIGEST_PREFIX = "# pyproject-inputs: sha256="
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _inputs(pyproject: dict[str, object], extras: tuple[str, ...]) -> dict[str, object]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    optional = project.get("optional-dependencies", {})
    return {
        "requires-python": project.get("requires-python", ""),
        "dependencies": sorted(project.get("dependencies", [])),
        "extras": {extra: sorted(optional.get(extra, [])) for extra in extras},
    }


def input_digest(pyproject_text: str, extras: tuple[str, ...]) -> str:
    """Pure: a digest of the requirements a lock answers (comments and order do not count)."""
    inputs = _inputs(tomllib.loads(pyproject_text), extras)
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def pins(lock_text: str) -> dict[str, str]:
    """Pure: {normalized name: version} of a lock's `name==version` lines."""
    return {_normalize(m.group(1)): m.group(2) for m in _PIN.finditer(lock_text)}


def problems(pyproject_text: str, lock_text: str, extras: tuple[str, ...]) -> list[str]:
    """Pure: why `lock_text` does not answer pyproject.toml's requirements (empty: it does)."""
    from packaging.requirements import Requirement  # pip's own; in every venv with the test extra

    found: list[str] = []
    want = DIGEST_PREFIX + input_digest(pyproject_text, extras)
    if want not in lock_text:
        found.append("pyproject.toml's requirements changed since the lock was written (run `make lock`)")
    pinned = pins(lock_text)
    inputs = _inputs(tomllib.loads(pyproject_text), extras)
    wanted = list(inputs["dependencies"])  # type: ignore[call-overload]
    for reqs in inputs["extras"].values():  # type: ignore[attr-defined]
        wanted += reqs
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # not for this platform (uvloop on Windows): the lock's own marker says so
        version = pinned.get(_normalize(req.name))
        if version is None:
            found.append(f"{req.name} is required but not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            found.append(f"{req.name}=={version} is pinned but pyproject asks {req.specifier}")
    return found


def _compile(extras: tuple[str, ...], out: Path, constraint: Path | None, upgrade: bool) -> None:
    command = [sys.executable, "-m", "uv", "pip", "compile", "pyproject.toml", "--universal",
               "--generate-hashes", "--python-version", PYTHON, "--quiet", "-o", str(out.relative_to(REPO))]
    for extra in extras:
        command += ["--extra", extra]
    if constraint is not None:
        command += ["-c", str(constraint.relative_to(REPO))]
    if upgrade:
        command.append("--upgrade")
    subprocess.run(command, cwd=REPO, check=True)
    text = out.read_text()
    header = (f"{DIGEST_PREFIX}{input_digest((REPO / 'pyproject.toml').read_text(), extras)}\n"
              "# Written by `make lock` (tools/lock.py); install with pip install --require-hashes -r.\n")
    out.write_text(header + text)


def write(upgrade: bool) -> None:
    """Resolve both locks: the dev set first, then the service within it."""
    LOCKS.mkdir(exist_ok=True)
    _compile(DEV_EXTRAS, DEV, None, upgrade)
    _compile((), SERVICE, DEV, False)


def check() -> list[str]:
    pyproject = (REPO / "pyproject.toml").read_text()
    found: list[str] = []
    for path, extras in ((SERVICE, ()), (DEV, DEV_EXTRAS)):
        if not path.exists():
            found.append(f"{path.relative_to(REPO)} is missing (run `make lock`)")
            continue
        found += [f"{path.relative_to(REPO)}: {p}" for p in problems(pyproject, path.read_text(), extras)]
    service, dev = pins(SERVICE.read_text()) if SERVICE.exists() else {}, pins(DEV.read_text()) if DEV.exists() else {}
    found += [f"requirements/service.txt pins {name}=={version}, the dev lock {dev.get(name)}"
              for name, version in service.items() if dev.get(name) != version]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="check the locks against pyproject.toml")
    parser.add_argument("--upgrade", action="store_true", help="newest allowed versions, not the pinned ones")
    args = parser.parse_args(argv)
    if args.check:
        found = check()
        for problem in found:
            print(f"lock: {problem}", file=sys.stderr)
        if not found:
            print("lock: requirements/service.txt and requirements/dev.txt match pyproject.toml")
        return 1 if found else 0
    write(args.upgrade)
    return 0


if __name__ == "__main__":
    sys.exit(main())
