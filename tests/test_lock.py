"""The dependency locks answer pyproject.toml (#19): CI fails when they drift apart.

`make test`, `make run` and the image install requirements/*.txt, not pyproject's
ranges; a requirement added or changed without `make lock` would otherwise go
untested until a user's install.
"""

from __future__ import annotations

from tools.lock import REPO, check, input_digest, pins, problems

PYPROJECT = """
[project]
name = "x"
requires-python = ">=3.11"
dependencies = [
    # a comment does not count
    "lxml>=5",
    "uvloop>=0.19; sys_platform == 'win32' and sys_platform != 'win32'",
]
[project.optional-dependencies]
test = ["pytest>=8"]
"""


def _lock(pyproject: str, *lines: str) -> str:
    return f"# pyproject-inputs: sha256={input_digest(pyproject, ('test',))}\n" + "\n".join(lines) + "\n"


def test_the_repositorys_locks_answer_its_pyproject() -> None:
    assert check() == []


def test_the_service_lock_installs_what_the_suite_tested() -> None:
    service = pins((REPO / "requirements" / "service.txt").read_text())
    dev = pins((REPO / "requirements" / "dev.txt").read_text())
    assert "lxml" in service and "lxml-html-clean" in service
    assert {name: dev[name] for name in service} == service
    assert "pytest" not in service and "pytest" in dev


def test_a_lock_that_answers_has_no_problems() -> None:
    lock = _lock(PYPROJECT, "lxml==6.2.0 \\", "    --hash=sha256:00", "pytest==9.0.1 \\")
    assert problems(PYPROJECT, lock, ("test",)) == []


def test_a_changed_requirement_is_found() -> None:
    lock = _lock(PYPROJECT, "lxml==6.2.0 \\", "pytest==9.0.1 \\")
    changed = PYPROJECT.replace('"lxml>=5"', '"lxml>=5,<6.2"')
    found = problems(changed, lock, ("test",))
    assert any("changed since the lock" in p for p in found)
    assert any("lxml==6.2.0 is pinned but pyproject asks <6.2,>=5" in p for p in found)


def test_a_new_requirement_is_found() -> None:
    added = PYPROJECT.replace('"lxml>=5",', '"lxml>=5",\n    "zstandard>=0.23",')
    found = problems(added, _lock(PYPROJECT, "lxml==6.2.0", "pytest==9.0.1"), ("test",))
    assert "zstandard is required but not pinned" in found


def test_comments_and_order_do_not_change_the_digest() -> None:
    reordered = PYPROJECT.replace("    # a comment does not count\n", "")
    assert input_digest(reordered, ("test",)) == input_digest(PYPROJECT, ("test",))
