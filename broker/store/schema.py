"""The SQLite store's schema: numbered migrations, applied in order when a file opens.

Each ``migrations/NNNN_name.sql`` moves the schema one version on, and a file's version is its
``PRAGMA user_version``. Whatever is pending runs in one ``IMMEDIATE`` transaction together
with the version bump: SQLite's DDL is transactional, so a file is at one version or another,
never between, and two processes opening one file at once migrate it once.

Files from before numbered migrations have ``user_version`` 0 and a ``schema_version`` table
that says 1 whatever they hold (each release added its columns on open). Such a file is placed
at the version its tables show (``legacy_version``) and migrated on from there, after the first
migration runs again to create any table of the first schema it lacks: those releases re-ran
their whole schema script at every open, so ``0001_initial.sql`` is written to re-run.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib import resources

import aiosqlite

from broker.store.errors import SchemaError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """The statements of a script, for ``execute`` one by one (``executescript`` would commit
    the open transaction first). Trigger bodies stay whole: SQLite's own tokenizer decides
    where a statement ends.

    Raises:
        ValueError: the script ends inside a statement.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if any(line.strip() and not line.lstrip().startswith("--") for line in pending.splitlines()):
        raise ValueError(f"incomplete statement at the end of the script: {pending.strip()!r}")
    return tuple(statements)


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration, by version; the versions run 1, 2, 3... without a gap.

    Raises:
        ValueError: a file is misnamed or a version is missing or doubled.
    """
    folder = resources.files("broker.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.removesuffix(".sql").partition("_")
        if not (number.isdigit() and len(number) == 4 and rest):
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(number), rest, split_statements(entry.read_text())))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ValueError(f"migration versions {[m.version for m in found]} are not 1..n")
    return tuple(found)


def latest_version() -> int:
    return len(migrations())


async def _tables(conn: aiosqlite.Connection) -> set[str]:
    async with conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ) as cur:
        return {row[0] for row in await cur.fetchall()}


async def _columns(conn: aiosqlite.Connection, table: str) -> set[str]:
    async with conn.execute(f"PRAGMA table_info({table})") as cur:
        return {row[1] for row in await cur.fetchall()}


async def legacy_version(conn: aiosqlite.Connection) -> int:
    """The version whose layout a file from before numbered migrations has.

    Each release added to the one before, so the newest addition present says it all: the
    audit checkpoint tables (2), case cancellation (3), session holders (4).
    """
    if "audit_keys" not in await _tables(conn):
        return 1
    if "cancelled_at" not in await _columns(conn, "cases"):
        return 2
    if "holder_user" not in await _columns(conn, "sessions"):
        return 3
    return 4


async def _version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def migrate(conn: aiosqlite.Connection) -> int:
    """Bring the file to the latest version, in one transaction; returns that version.

    Raises:
        SchemaError: the file is at a version newer than this broker knows (a newer release
            wrote it), or a migration failed; either way the file is left as it was.
    """
    latest = latest_version()
    await conn.execute("BEGIN IMMEDIATE")
    try:
        version = await _version(conn)
        placed = version == 0 and bool(await _tables(conn))
        if placed:
            version = await legacy_version(conn)
            # The old stamp said 1 whatever the layout; user_version says it from now on.
            await conn.execute("DROP TABLE IF EXISTS schema_version")
        if version > latest:
            raise SchemaError(
                f"the database is at schema version {version}, newer than this broker's "
                f"{latest}: run the release that wrote it, or restore a backup"
            )
        pending = migrations()[version:]
        if placed:
            pending = (migrations()[0], *pending)
        for migration in pending:
            try:
                for statement in migration.statements:
                    await conn.execute(statement)
            except sqlite3.Error as exc:
                raise SchemaError(
                    f"schema migration {migration.version} ({migration.name}) failed: {exc}; "
                    "the database is left as it was"
                ) from exc
        if pending or placed:
            # PRAGMA takes no parameters; ``latest`` is an int of ours.
            await conn.execute(f"PRAGMA user_version = {latest:d}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    if pending:
        log.info(
            "database schema migrated from version %d to %d (%s)%s",
            version,
            latest,
            ", ".join(m.name for m in pending),
            "; the file was from before numbered migrations" if placed else "",
        )
    return latest
