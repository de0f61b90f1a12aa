"""PostgreSQL for the tests: the server at 127.0.0.1:5432 (user postgres, database test).

Each test gets a private schema (`ingest_t_<pid>_<n>`), dropped afterwards.
Without a reachable server the tests skip with the reason, unless
TEST_REQUIRE_POSTGRES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import pytest

PG_BASE = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_counter = itertools.count()
_reachable: list[str | None] = []  # cached: None when reachable, else why not


async def _try(dsn: str) -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
        return f"PostgreSQL at {dsn} unreachable: {type(e).__name__}: {e}"
    await conn.close()
    return None


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def _drop(schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(PG_BASE, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    _run(drop())


def require_postgres() -> None:
    if not _reachable:
        _reachable.append(_run(_try(PG_BASE)))
    why = _reachable[0]
    if why is None:
        return
    if os.environ.get("TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{why} (TEST_REQUIRE_POSTGRES=1: PostgreSQL tests must run)")
    pytest.skip(why)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A storage URL with a fresh private schema, dropped after the test."""
    require_postgres()
    schema = f"ingest_t_{os.getpid()}_{next(_counter)}"
    yield f"{PG_BASE}?schema={schema}"
    _drop(schema)
