"""The store contract's back ends: every test in this package runs once per entry of
``BACKENDS``, against a real database (SQLite: a file under the test's tmp_path).

A new back end (PostgreSQL, say) adds one opener here; one that needs a server it cannot start
itself skips when none is configured, so the suite still runs everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from broker.store.base import Store
from broker.store.sqlite import SQLiteStore


async def _sqlite(tmp_path: Path) -> Store:
    return await SQLiteStore.open(str(tmp_path / "contract.db"))


BACKENDS: dict[str, Callable[[Path], Awaitable[Store]]] = {"sqlite": _sqlite}
"""Back end name -> opener of an empty store."""


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await BACKENDS[request.param](tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
