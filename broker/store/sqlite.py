"""SQLite storage through aiosqlite: the embedded default store.

One connection per process; every write runs inside ``transaction()``, which holds an asyncio
lock and an ``IMMEDIATE`` SQLite transaction, so a state change and its audit event are
committed together or not at all. Audit appends read the chain head inside that same
transaction, which keeps the chain linear without any other coordination.

It implements ``broker.store.base.Store``; opening a file applies its pending schema
migrations (``broker.store.schema``). Refused writes raise ``broker.store.errors`` classes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from broker.audit.chain import GENESIS_HASH, AuditEvent, AuditRecord, StoredRow, chain_next
from broker.audit.checkpoint import Checkpoint
from broker.store import schema
from broker.store.errors import (
    AppendOnly,
    DuplicateKey,
    MissingReference,
    RecordNotFound,
    WriteRefused,
)
from broker.store.records import (
    AuditKeyRecord,
    AuditQuery,
    CaseRecord,
    ContactAttempt,
    CustomerFeedback,
    Invitation,
    QueueEntry,
    SessionRecord,
    SigningKeyRecord,
    UserRecord,
    iso,
    parse_iso,
)

log = logging.getLogger(__name__)

_CASE_COLUMNS = (
    "number, customer_name, company, contact, product, serial_number, description, severity, "
    "plan, status, created_by, created_at, updated_at, response_due, first_response_at, "
    "first_response_met, last_customer_response_at, cancelled_at, cancelled_by, cancel_reason, "
    "breach_recorded_at"
)
_SESSION_COLUMNS = (
    "id, case_number, created_by, engineer_display, engineer_level, created_at, code_hash, "
    "code_expires_at, code_used_at, state, ended_at, end_reason, holder_user, holder_display, "
    "holder_level"
)
_AUDIT_COLUMNS = (
    "seq, at, actor, actor_role, client_addr, action, case_number, session_id, details, "
    "prev_hash, hash"
)


def sqlite_path(db: str) -> Path:
    """Accept a plain path or a ``sqlite:///path`` URL."""
    if db.startswith("sqlite:///"):
        return Path(db.removeprefix("sqlite:///"))
    if "://" in db:
        raise ValueError(f"unsupported database URL {db!r}: only SQLite is built in")
    return Path(db)


_WRITE_TABLE = re.compile(r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)
_TABLE_NOUNS = {
    "users": "user",
    "signing_keys": "signing key",
    "secrets": "secret",
    "cases": "case",
    "contact_attempts": "contact attempt",
    "customer_feedback": "customer answer",
    "sessions": "session",
    "invitations": "invitation",
    "audit_events": "audit event",
    "audit_head": "audit head",
    "audit_keys": "audit key",
    "audit_checkpoints": "audit checkpoint",
}


_REFUSALS: dict[str, type[WriteRefused]] = {
    "SQLITE_CONSTRAINT_PRIMARYKEY": DuplicateKey,
    "SQLITE_CONSTRAINT_UNIQUE": DuplicateKey,
    "SQLITE_CONSTRAINT_FOREIGNKEY": MissingReference,
    # Our only triggers are the audit tables' append-only guards.
    "SQLITE_CONSTRAINT_TRIGGER": AppendOnly,
}


def _refusal(sql: str, exc: sqlite3.IntegrityError) -> WriteRefused:
    """The store error for a refused write, from our SQL and SQLite's error code, not its text."""
    match = _WRITE_TABLE.match(sql)
    noun = _TABLE_NOUNS.get(match.group(1).lower(), "record") if match else "record"
    kind = getattr(exc, "sqlite_errorname", "")
    return _REFUSALS.get(kind, WriteRefused)(noun)


def _case(row: sqlite3.Row) -> CaseRecord:
    met = row["first_response_met"]
    return CaseRecord(
        number=row["number"],
        customer_name=row["customer_name"],
        company=row["company"],
        contact=row["contact"],
        product=row["product"],
        serial_number=row["serial_number"],
        description=row["description"],
        severity=row["severity"],
        plan=row["plan"],
        status=row["status"],
        created_by=row["created_by"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        response_due=datetime.fromisoformat(row["response_due"]),
        first_response_at=parse_iso(row["first_response_at"]),
        first_response_met=None if met is None else bool(met),
        last_customer_response_at=parse_iso(row["last_customer_response_at"]),
        cancelled_at=parse_iso(row["cancelled_at"]),
        cancelled_by=row["cancelled_by"],
        cancel_reason=row["cancel_reason"],
        breach_recorded_at=parse_iso(row["breach_recorded_at"]),
    )


def _session(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        case_number=row["case_number"],
        created_by=row["created_by"],
        engineer_display=row["engineer_display"],
        engineer_level=row["engineer_level"],
        created_at=datetime.fromisoformat(row["created_at"]),
        code_hash=row["code_hash"],
        code_expires_at=datetime.fromisoformat(row["code_expires_at"]),
        code_used_at=parse_iso(row["code_used_at"]),
        state=row["state"],
        ended_at=parse_iso(row["ended_at"]),
        end_reason=row["end_reason"],
        holder_user=row["holder_user"],
        holder_display=row["holder_display"],
        holder_level=row["holder_level"],
    )


def _invitation(row: sqlite3.Row) -> Invitation:
    return Invitation(
        session_id=row["session_id"],
        at=datetime.fromisoformat(row["at"]),
        by_user=row["by_user"],
        target_user=row["target_user"],
        target_level=row["target_level"],
        reason=row["reason"],
        id=row["id"],
        accepted_at=parse_iso(row["accepted_at"]),
        accepted_by=row["accepted_by"],
    )


def _stored_row(row: sqlite3.Row) -> StoredRow:
    return StoredRow(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        actor_role=row["actor_role"],
        client_addr=row["client_addr"],
        action=row["action"],
        case_number=row["case_number"],
        session_id=row["session_id"],
        details_json=row["details"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class SQLiteStore:
    """The broker's persistence, on one SQLite file."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._write_lock = asyncio.Lock()
        self._in_tx = False

    @classmethod
    async def open(cls, db: str) -> SQLiteStore:
        """Open (or create) the file and apply its pending schema migrations.

        Raises:
            SchemaError: a newer broker's file; it is left untouched.
        """
        path = sqlite_path(db)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            await schema.migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Serialise writers and commit everything done inside, or nothing."""
        async with self._write_lock:
            await self._settle("BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                yield
            except BaseException:
                await self._settle("ROLLBACK")
                raise
            else:
                await self._settle("COMMIT")
            finally:
                self._in_tx = False

    async def _settle(self, statement: str) -> None:
        """Run a transaction statement to completion even if the caller is cancelled.

        aiosqlite runs the statement in its thread whatever happens to the awaiting task; a
        task cancelled mid-``BEGIN`` would otherwise leave the connection inside a transaction
        that nobody ends (and every later ``BEGIN`` would fail).
        """
        task = asyncio.ensure_future(self._conn.execute(statement))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            if statement.startswith("BEGIN"):
                await self._conn.execute("ROLLBACK")
            raise

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Cursor:
        if not self._in_tx:
            raise RuntimeError("store writes must run inside transaction()")
        try:
            return await self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            # SQLite's own text names tables, columns and triggers: keep it for the operator's
            # log and give the client a sentence of ours.
            log.info("store write refused: %s", exc)
            raise _refusal(sql, exc) from exc

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    # --- secrets and counters -------------------------------------------------------------

    async def get_secret(self, name: str) -> bytes | None:
        row = await self._one("SELECT value FROM secrets WHERE name = ?", (name,))
        return bytes(row["value"]) if row else None

    async def put_secret(self, name: str, value: bytes) -> None:
        await self._write("INSERT INTO secrets (name, value) VALUES (?, ?)", (name, value))

    async def next_counter(self, name: str) -> int:
        await self._write(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1",
            (name,),
        )
        row = await self._one("SELECT value FROM counters WHERE name = ?", (name,))
        assert row is not None
        return int(row["value"])

    # --- users and signing keys -----------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        await self._write(
            "INSERT INTO users (name, display_name, role, password_hash, disabled, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                user.name,
                user.display_name,
                user.role,
                user.password_hash,
                int(user.disabled),
                iso(user.created_at),
            ),
        )

    async def get_user(self, name: str) -> UserRecord | None:
        row = await self._one("SELECT * FROM users WHERE name = ?", (name,))
        if row is None:
            return None
        return UserRecord(
            name=row["name"],
            display_name=row["display_name"],
            role=row["role"],
            password_hash=row["password_hash"],
            disabled=bool(row["disabled"]),
            created_at=datetime.fromisoformat(row["created_at"]),
        )

    async def list_users(self) -> list[UserRecord]:
        rows = await self._all("SELECT name FROM users ORDER BY name")
        users = [await self.get_user(row["name"]) for row in rows]
        return [user for user in users if user is not None]

    async def count_users(self) -> int:
        row = await self._one("SELECT COUNT(*) AS n FROM users")
        return int(row["n"]) if row else 0

    async def set_user_disabled(self, name: str, disabled: bool) -> None:
        cur = await self._write(
            "UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name)
        )
        if cur.rowcount == 0:
            raise RecordNotFound("user", name, f"no user named {name!r}")

    async def enabled_user_names(self, names: Collection[str]) -> frozenset[str]:
        """Which of ``names`` are users that exist and are enabled: one query, one parameter
        (a JSON array, so no limit on how many names are asked about)."""
        rows = await self._all(
            "SELECT name FROM users WHERE disabled = 0 "
            "AND name IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(names)),),
        )
        return frozenset(row["name"] for row in rows)

    async def set_password_hash(self, name: str, password_hash: str) -> None:
        await self._write(
            "UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name)
        )

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        rows = await self._all("SELECT * FROM signing_keys ORDER BY created_at")
        return [
            SigningKeyRecord(
                kid=row["kid"],
                private_pem=row["private_pem"],
                created_at=datetime.fromisoformat(row["created_at"]),
                retired_at=parse_iso(row["retired_at"]),
            )
            for row in rows
        ]

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        await self._write(
            "INSERT INTO signing_keys (kid, private_pem, created_at, retired_at) "
            "VALUES (?, ?, ?, ?)",
            (key.kid, key.private_pem, iso(key.created_at), None),
        )

    async def signing_key_ids(self) -> frozenset[str]:
        rows = await self._all("SELECT kid FROM signing_keys")
        return frozenset(row["kid"] for row in rows)

    async def delete_signing_key(self, kid: str) -> None:
        """Revocation: the key goes, private half included, so nothing verifies with it."""
        cur = await self._write("DELETE FROM signing_keys WHERE kid = ?", (kid,))
        if cur.rowcount == 0:
            raise RecordNotFound("signing key", kid)

    async def retire_signing_key(self, kid: str, at: datetime) -> None:
        await self._write(
            "UPDATE signing_keys SET retired_at = ? WHERE kid = ? AND retired_at IS NULL",
            (iso(at), kid),
        )

    # --- cases ----------------------------------------------------------------------------

    async def insert_case(self, case: CaseRecord) -> None:
        await self._write(
            f"INSERT INTO cases ({_CASE_COLUMNS}) VALUES ({', '.join('?' * 21)})",
            (
                case.number,
                case.customer_name,
                case.company,
                case.contact,
                case.product,
                case.serial_number,
                case.description,
                case.severity,
                case.plan,
                case.status,
                case.created_by,
                iso(case.created_at),
                iso(case.updated_at),
                iso(case.response_due),
                iso(case.first_response_at) if case.first_response_at else None,
                None if case.first_response_met is None else int(case.first_response_met),
                iso(case.last_customer_response_at) if case.last_customer_response_at else None,
                iso(case.cancelled_at) if case.cancelled_at else None,
                case.cancelled_by,
                case.cancel_reason,
                iso(case.breach_recorded_at) if case.breach_recorded_at else None,
            ),
        )

    async def get_case(self, number: str) -> CaseRecord | None:
        row = await self._one(f"SELECT {_CASE_COLUMNS} FROM cases WHERE number = ?", (number,))
        return _case(row) if row else None

    async def list_cases(self, statuses: Iterable[str] | None = None) -> list[CaseRecord]:
        wanted = list(statuses or [])
        where = f"WHERE status IN ({', '.join('?' * len(wanted))})" if wanted else ""
        rows = await self._all(
            f"SELECT {_CASE_COLUMNS} FROM cases {where} "
            "ORDER BY severity, response_due, created_at",
            wanted,
        )
        return [_case(row) for row in rows]

    async def update_case(self, number: str, **changes: Any) -> None:
        allowed = {
            "status",
            "updated_at",
            "first_response_at",
            "first_response_met",
            "last_customer_response_at",
            "severity",
            "plan",
            "response_due",
            "cancelled_at",
            "cancelled_by",
            "cancel_reason",
            "breach_recorded_at",
        }
        if not changes or set(changes) - allowed:
            raise ValueError(f"cannot update case fields {sorted(set(changes) - allowed)}")
        values = [
            iso(v) if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v
            for v in changes.values()
        ]
        assignments = ", ".join(f"{name} = ?" for name in changes)
        await self._write(f"UPDATE cases SET {assignments} WHERE number = ?", [*values, number])

    async def breach_candidates(self, now: datetime, active: Sequence[str]) -> list[CaseRecord]:
        """Cases whose deadline passed before ``now`` and that may count as SLA breaches: still
        worked on (``active`` statuses) without a response, or answered late and not yet
        recorded as breached. A pre-filter: ``sla.response_state`` decides.
        """
        marks = ", ".join("?" * len(active))
        rows = await self._all(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE response_due < ? AND ("
            f"(first_response_at IS NULL AND status IN ({marks})) "
            "OR (first_response_met = 0 AND breach_recorded_at IS NULL)) "
            "ORDER BY response_due",
            (iso(now), *active),
        )
        return [_case(row) for row in rows]

    async def add_customer_feedback(self, feedback: CustomerFeedback) -> None:
        await self._write(
            "INSERT INTO customer_feedback (case_number, session_id, at, solved, comment) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                feedback.case_number,
                feedback.session_id,
                iso(feedback.at),
                int(feedback.solved),
                feedback.comment,
            ),
        )

    async def list_customer_feedback(self, number: str) -> list[CustomerFeedback]:
        rows = await self._all(
            "SELECT * FROM customer_feedback WHERE case_number = ? ORDER BY id", (number,)
        )
        return [
            CustomerFeedback(
                case_number=row["case_number"],
                session_id=row["session_id"],
                at=datetime.fromisoformat(row["at"]),
                solved=bool(row["solved"]),
                comment=row["comment"],
            )
            for row in rows
        ]

    async def add_contact_attempt(self, attempt: ContactAttempt) -> None:
        await self._write(
            "INSERT INTO contact_attempts (case_number, at, by_user, channel, note) "
            "VALUES (?, ?, ?, ?, ?)",
            (attempt.case_number, iso(attempt.at), attempt.by_user, attempt.channel, attempt.note),
        )

    async def list_contact_attempts(self, number: str) -> list[ContactAttempt]:
        rows = await self._all(
            "SELECT * FROM contact_attempts WHERE case_number = ? ORDER BY at", (number,)
        )
        return [
            ContactAttempt(
                case_number=row["case_number"],
                at=datetime.fromisoformat(row["at"]),
                by_user=row["by_user"],
                channel=row["channel"],
                note=row["note"],
            )
            for row in rows
        ]

    # --- sessions -------------------------------------------------------------------------

    async def insert_session(self, session: SessionRecord) -> None:
        await self._write(
            f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES ({', '.join('?' * 15)})",
            (
                session.id,
                session.case_number,
                session.created_by,
                session.engineer_display,
                session.engineer_level,
                iso(session.created_at),
                session.code_hash,
                iso(session.code_expires_at),
                None,
                session.state,
                None,
                None,
                session.holder_user,
                session.holder_display,
                session.holder_level,
            ),
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self._one(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        )
        return _session(row) if row else None

    async def session_by_code_hash(self, code_hash: str) -> SessionRecord | None:
        row = await self._one(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE code_hash = ?", (code_hash,)
        )
        return _session(row) if row else None

    async def claim_code(self, session_id: str, now: datetime) -> bool:
        """Mark the session's code used; False if it was already used or has expired."""
        cur = await self._write(
            "UPDATE sessions SET code_used_at = ? "
            "WHERE id = ? AND code_used_at IS NULL AND code_expires_at > ?",
            (iso(now), session_id, iso(now)),
        )
        return cur.rowcount == 1

    async def set_session_state(
        self,
        session_id: str,
        state: str,
        *,
        ended_at: datetime | None = None,
        end_reason: str | None = None,
    ) -> None:
        await self._write(
            "UPDATE sessions SET state = ?, ended_at = COALESCE(?, ended_at), "
            "end_reason = COALESCE(?, end_reason) WHERE id = ?",
            (state, iso(ended_at) if ended_at else None, end_reason, session_id),
        )

    async def set_session_holder(
        self, session_id: str, user: str | None, display: str | None, level: str | None
    ) -> None:
        """Record who has the session in hand now (all None: nobody)."""
        await self._write(
            "UPDATE sessions SET holder_user = ?, holder_display = ?, holder_level = ? "
            "WHERE id = ?",
            (user, display, level, session_id),
        )

    async def list_sessions_for_case(self, number: str) -> list[SessionRecord]:
        rows = await self._all(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE case_number = ? ORDER BY created_at",
            (number,),
        )
        return [_session(row) for row in rows]

    async def queue(self, states: Sequence[str]) -> list[QueueEntry]:
        """Sessions in ``states``, most urgent first: severity, then response-due time."""
        session_cols = ", ".join(f"s.{c.strip()}" for c in _SESSION_COLUMNS.split(","))
        case_cols = ", ".join(f"c.{c.strip()} AS c_{c.strip()}" for c in _CASE_COLUMNS.split(","))
        rows = await self._all(
            f"SELECT {session_cols}, {case_cols} FROM sessions s "
            "JOIN cases c ON c.number = s.case_number "
            f"WHERE s.state IN ({', '.join('?' * len(states))}) "
            "ORDER BY c.severity, c.response_due, s.created_at",
            list(states),
        )
        entries = []
        for row in rows:
            case_row = {k.removeprefix("c_"): row[k] for k in row.keys() if k.startswith("c_")}
            entries.append(QueueEntry(session=_session(row), case=_case(case_row)))  # type: ignore[arg-type]
        return entries

    async def add_invitation(self, invitation: Invitation) -> int:
        """Store an invitation; returns its id."""
        cur = await self._write(
            "INSERT INTO invitations (session_id, at, by_user, target_user, target_level, reason) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                invitation.session_id,
                iso(invitation.at),
                invitation.by_user,
                invitation.target_user,
                invitation.target_level,
                invitation.reason,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def list_invitations(self, session_id: str) -> list[Invitation]:
        rows = await self._all(
            "SELECT * FROM invitations WHERE session_id = ? ORDER BY id", (session_id,)
        )
        return [_invitation(row) for row in rows]

    async def open_invitations(self, session_ids: Sequence[str]) -> list[Invitation]:
        """Invitations to these sessions that nobody has accepted yet, oldest first."""
        if not session_ids:
            return []
        rows = await self._all(
            f"SELECT * FROM invitations WHERE session_id IN ({', '.join('?' * len(session_ids))})"
            " AND accepted_at IS NULL ORDER BY id",
            list(session_ids),
        )
        return [_invitation(row) for row in rows]

    async def accept_invitation(self, invitation_id: int, at: datetime, by_user: str) -> bool:
        """Mark an invitation accepted; False if someone accepted it first."""
        cur = await self._write(
            "UPDATE invitations SET accepted_at = ?, accepted_by = ? "
            "WHERE id = ? AND accepted_at IS NULL",
            (iso(at), by_user, invitation_id),
        )
        return cur.rowcount == 1

    # --- audit ----------------------------------------------------------------------------

    async def append_audit(self, record: AuditRecord) -> AuditEvent:
        """Chain ``record`` after the current head; must run inside ``transaction()``."""
        head = await self.audit_head()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        event = chain_next(record, seq, prev_hash)
        await self._write(
            f"INSERT INTO audit_events ({_AUDIT_COLUMNS}) VALUES ({', '.join('?' * 11)})",
            (
                event.seq,
                event.at,
                event.actor,
                event.actor_role,
                event.client_addr,
                event.action,
                event.case_number,
                event.session_id,
                json.dumps(
                    event.details, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                ),
                event.prev_hash,
                event.hash,
            ),
        )
        await self._write(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (event.seq, event.hash),
        )
        return event

    async def audit_head(self) -> tuple[int, str] | None:
        row = await self._one("SELECT seq, hash FROM audit_head WHERE id = 1")
        return (int(row["seq"]), str(row["hash"])) if row else None

    async def audit_rows(self, batch: int = 1000) -> AsyncIterator[StoredRow]:
        """Every audit row in storage order, read in batches (for verify and export)."""
        last = 0
        while True:
            rows = await self._all(
                f"SELECT {_AUDIT_COLUMNS} FROM audit_events WHERE seq > ? ORDER BY rowid LIMIT ?",
                (last, batch),
            )
            if not rows:
                return
            for row in rows:
                yield _stored_row(row)
            last = rows[-1]["seq"]

    async def add_audit_key(self, key: AuditKeyRecord) -> None:
        await self._write(
            "INSERT INTO audit_keys (kid, public_key, private_pem, created_at, retired_at) "
            "VALUES (?, ?, ?, ?, NULL)",
            (key.kid, key.public_key, key.private_pem, iso(key.created_at)),
        )

    async def retire_audit_keys(self, at: datetime) -> None:
        """Retire the active audit key and forget its private half: it only verifies now."""
        await self._write(
            "UPDATE audit_keys SET retired_at = ?, private_pem = NULL WHERE retired_at IS NULL",
            (iso(at),),
        )

    async def list_audit_keys(self) -> list[AuditKeyRecord]:
        rows = await self._all("SELECT * FROM audit_keys ORDER BY created_at")
        return [
            AuditKeyRecord(
                kid=row["kid"],
                public_key=row["public_key"],
                private_pem=row["private_pem"],
                created_at=datetime.fromisoformat(row["created_at"]),
                retired_at=parse_iso(row["retired_at"]),
            )
            for row in rows
        ]

    async def add_audit_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._write(
            "INSERT INTO audit_checkpoints (seq, hash, at, kid, signature) VALUES (?, ?, ?, ?, ?)",
            (checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.kid, checkpoint.signature),
        )

    async def latest_audit_checkpoint(self) -> Checkpoint | None:
        """The checkpoint of the highest ``seq``."""
        row = await self._one(
            "SELECT seq, hash, at, kid, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        )
        if row is None:
            return None
        return Checkpoint(row["seq"], row["hash"], row["at"], row["kid"], row["signature"])

    async def query_audit(self, query: AuditQuery) -> list[StoredRow]:
        clauses = ["seq > ?"]
        params: list[Any] = [query.after_seq]
        for column, value in (
            ("case_number", query.case_number),
            ("session_id", query.session_id),
            ("actor", query.actor),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            clauses.append("at >= ?")
            params.append(iso(query.since))
        if query.until is not None:
            clauses.append("at < ?")
            params.append(iso(query.until))
        rows = await self._all(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_events WHERE {' AND '.join(clauses)} "
            "ORDER BY seq LIMIT ?",
            [*params, query.limit],
        )
        return [_stored_row(row) for row in rows]
