"""The SQLite store's numbered migrations: a new file, a file at each older version (numbered,
or from before numbering), a newer broker's file, and a migration that fails half-way.

Each release before numbered migrations stamped ``schema_version`` 1 and added its columns on
open, so "a file from before" comes in four layouts; ``_legacy_file`` builds each one from the
migrations that made it (checked against every release's ``schema.sql`` when this was written:
the same tables, columns, keys, indexes and triggers).
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from broker.store import schema
from broker.store.errors import SchemaError
from broker.store.sqlite import SQLiteStore

LATEST = schema.latest_version()
T = "2026-03-02T09:30:15.123456+00:00"

RELEASED = {
    1: "6e10b75e375ce79fc57ce823395c23f6d4ecedf8ded80848bf714c6aae103a87",
    2: "550270819f12aa028c4f73763f928b67255a3d8153ce8190a857b05bad215315",
    3: "3a46c235222b417bf407943a55e13c05a4e87253c75aa75f2e6adf303d3c46cc",
    4: "541e09004839bd22ffe710770db03692770d40fb3cbe22a4752a349b61cc3f05",
}
"""sha256 of each released migration file: files out there are at these versions, so a
released migration never changes (a change is a new migration)."""


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection that commits and closes (what an older broker left)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        yield conn


def _layout(path: Path) -> list[tuple[str, str, str, str]]:
    with _connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    return [tuple(row) for row in rows]


def _version(path: Path) -> int:
    with _connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _migrated_to(path: Path, version: int, *, numbered: bool) -> None:
    """A file at ``version``: numbered (user_version set) or as the releases before left it."""
    with _connect(path) as conn:
        for migration in schema.migrations()[:version]:
            for statement in migration.statements:
                conn.execute(statement)
        if numbered:
            conn.execute(f"PRAGMA user_version = {version}")
        else:
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(
            "INSERT INTO cases (number, customer_name, company, contact, product, "
            "serial_number, description, severity, plan, status, created_by, created_at, "
            "updated_at, response_due) VALUES "
            "('OLD-1', 'Ana', 'Sur', 'x', 'P', 'S', '', 2, 'gold', 'open', 'rita', ?, ?, ?)",
            (T, T, T),
        )
        conn.execute(
            "INSERT INTO sessions (id, case_number, created_by, engineer_display, "
            "engineer_level, created_at, code_hash, code_expires_at, state) VALUES "
            "('s-old', 'OLD-1', 'rita', 'Rita Reyes', 'L2', ?, 'h', ?, 'ended')",
            (T, T),
        )
        if version >= 4:  # a hand-over happened: the holder is not the creator
            conn.execute("UPDATE sessions SET holder_user = 'eve', holder_display = 'Eve'")


@pytest.fixture
async def fresh_layout(tmp_path: Path) -> list[tuple[str, str, str, str]]:
    path = tmp_path / "fresh.db"
    await (await SQLiteStore.open(str(path))).close()
    assert _version(path) == LATEST
    return _layout(path)


def test_released_migrations_never_change() -> None:
    files = schema.migrations()
    assert [m.version for m in files] == list(range(1, LATEST + 1))
    folder = Path(schema.__file__).parent / "migrations"
    for version, digest in RELEASED.items():
        (path,) = folder.glob(f"{version:04d}_*.sql")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path.name


async def test_a_new_file_is_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = await SQLiteStore.open(str(path))
    await store.close()
    assert _version(path) == LATEST
    tables = {name for kind, name, _, _ in _layout(path) if kind == "table"}
    assert "schema_version" not in tables and {"cases", "audit_checkpoints"} <= tables
    # Opening again changes nothing.
    before = _layout(path)
    await (await SQLiteStore.open(str(path))).close()
    assert _layout(path) == before


@pytest.mark.parametrize("numbered", [True, False], ids=["numbered", "from-before-numbering"])
@pytest.mark.parametrize("version", range(1, LATEST + 1))
async def test_a_file_at_an_older_version_is_migrated(
    tmp_path: Path, fresh_layout: list[tuple[str, str, str, str]], version: int, numbered: bool
) -> None:
    path = tmp_path / "old.db"
    _migrated_to(path, version, numbered=numbered)
    store = await SQLiteStore.open(str(path))
    try:
        case = await store.get_case("OLD-1")
        session = await store.get_session("s-old")
    finally:
        await store.close()
    assert _version(path) == LATEST
    assert _layout(path) == fresh_layout  # the legacy stamp table is gone too
    assert case is not None and (case.customer_name, case.cancelled_at) == ("Ana", None)
    assert session is not None
    # Migration 4 names the creator as the holder of older sessions; it never runs again.
    expected = ("eve", "Eve") if version >= 4 else ("rita", "Rita Reyes")
    assert (session.holder_user, session.holder_display) == expected


async def test_a_file_of_a_newer_broker_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    _migrated_to(path, LATEST, numbered=True)
    with _connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    before = _layout(path)
    with pytest.raises(SchemaError, match=f"schema version {LATEST + 1}, newer than"):
        await SQLiteStore.open(str(path))
    assert (_version(path), _layout(path)) == (LATEST + 1, before)


async def test_a_failing_migration_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    """Migration 4 fails at its second table (a column there already): its first table's
    changes go too, and the file stays at version 3, as it was."""
    path = tmp_path / "half.db"
    _migrated_to(path, 3, numbered=True)
    with _connect(path) as conn:
        conn.execute("ALTER TABLE invitations ADD COLUMN accepted_at TEXT")
    before = _layout(path)
    with pytest.raises(SchemaError, match="migration 4 .* failed: duplicate column"):
        await SQLiteStore.open(str(path))
    assert (_version(path), _layout(path)) == (3, before)


async def test_two_processes_opening_a_new_file_migrate_it_once(tmp_path: Path) -> None:
    path = str(tmp_path / "both.db")
    stores = await asyncio.gather(*(SQLiteStore.open(path) for _ in range(4)))
    for store in stores:
        await store.close()
    assert _version(Path(path)) == LATEST


def test_statements_split_where_sqlite_ends_them() -> None:
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (x TEXT DEFAULT ';');\n"
        "CREATE TRIGGER t_no_delete BEFORE DELETE ON t\nBEGIN\n"
        "    SELECT RAISE(ABORT, 'no');\nEND;\n"
        "-- trailing comment\n"
    )
    first, trigger = schema.split_statements(script)
    assert first.endswith("CREATE TABLE t (x TEXT DEFAULT ';');")
    assert trigger.startswith("CREATE TRIGGER") and trigger.endswith("END;")
    with pytest.raises(ValueError, match="incomplete statement"):
        schema.split_statements("CREATE TABLE t (x TEXT);\nCREATE TABLE u (y")
