"""Both storage backends as one parametrized fixture: a test that takes `storage_url`
(or `sink`, opened on it) runs once on SQLite and once on PostgreSQL.

tests/conftest.py offers them (and `postgres_url`) to every test module;
PostgreSQL comes from tests/pgfixture.py and skips, with the reason,
where none is reachable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingest.store import open_sink
from ingest.store.base import Sink
from tests.pgfixture import postgres_url

__all__ = ["postgres_url", "sink", "storage_url"]


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'items.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def sink(storage_url: str) -> AsyncIterator[Sink]:
    s = open_sink(storage_url)
    await s.open()
    yield s
    await s.close()
