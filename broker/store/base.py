"""``Store``: what the services need from persistence, whatever the back end.

Every service is typed against this protocol; only the construction site (``open_services``)
names a back end (``SQLiteStore`` today). A back end passes ``tests/contract/``, which holds
each method to the behaviour written here. Its rules, for all methods:

- Writes run inside ``transaction()``; a write outside one raises ``RuntimeError``.
- Transactions serialise: one's reads and writes happen wholly before or after another's, so a
  read-then-write inside one (the audit chain head, a free case number) cannot race.
- A transaction left by an exception, cancellation included, keeps none of its writes.
- Refusals raise ``broker.store.errors`` classes, never the driver's exceptions or HTTP errors.
- Times go in and come out as timezone-aware ``datetime``s, to the microsecond.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from broker.audit.chain import AuditEvent, AuditRecord, StoredRow
from broker.audit.checkpoint import Checkpoint
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
)


class Store(Protocol):
    """The broker's persistence (see the module docstring for the rules every method keeps)."""

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Commit everything done inside, or nothing; one transaction at a time."""
        ...

    # --- secrets and counters -------------------------------------------------------------

    async def get_secret(self, name: str) -> bytes | None: ...

    async def put_secret(self, name: str, value: bytes) -> None:
        """Store a secret once. Raises ``DuplicateKey`` if ``name`` has one already."""
        ...

    async def next_counter(self, name: str) -> int:
        """1, 2, 3... per ``name``, never the same number twice."""
        ...

    # --- users and signing keys -----------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        """Raises ``DuplicateKey`` for a name that exists."""
        ...

    async def get_user(self, name: str) -> UserRecord | None: ...

    async def list_users(self) -> list[UserRecord]:
        """Every user, by name."""
        ...

    async def count_users(self) -> int: ...

    async def set_user_disabled(self, name: str, disabled: bool) -> None:
        """Raises ``RecordNotFound`` ("no user named ...") for an unknown name."""
        ...

    async def enabled_user_names(self, names: Collection[str]) -> frozenset[str]:
        """Which of ``names`` exist and are enabled, however many are asked about."""
        ...

    async def set_password_hash(self, name: str, password_hash: str) -> None: ...

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        """Every token signing key, oldest first."""
        ...

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        """Stored as not retired, whatever ``key.retired_at`` says."""
        ...

    async def signing_key_ids(self) -> frozenset[str]: ...

    async def delete_signing_key(self, kid: str) -> None:
        """Revocation: the key is gone. Raises ``RecordNotFound`` for an unknown kid."""
        ...

    async def retire_signing_key(self, kid: str, at: datetime) -> None:
        """Set ``retired_at`` of a key not retired yet; a retired key keeps its time."""
        ...

    # --- cases ----------------------------------------------------------------------------

    async def insert_case(self, case: CaseRecord) -> None:
        """Raises ``DuplicateKey`` for a number that exists."""
        ...

    async def get_case(self, number: str) -> CaseRecord | None: ...

    async def list_cases(self, statuses: Iterable[str] | None = None) -> list[CaseRecord]:
        """Cases in ``statuses`` (all when None or empty), by severity, due time, creation."""
        ...

    async def update_case(self, number: str, **changes: Any) -> None:
        """Change the mutable fields (status, times, severity, plan, cancellation, breach).

        Raises:
            ValueError: no changes, or a field that is not mutable (number, customer, ...).
        """
        ...

    async def breach_candidates(self, now: datetime, active: Sequence[str]) -> list[CaseRecord]:
        """Cases due before ``now`` that are unanswered in ``active`` statuses, or answered
        late and not recorded as breached yet; by due time."""
        ...

    async def add_customer_feedback(self, feedback: CustomerFeedback) -> None:
        """Raises ``MissingReference`` for an unknown case or session."""
        ...

    async def list_customer_feedback(self, number: str) -> list[CustomerFeedback]:
        """The case's answers in the order they were given."""
        ...

    async def add_contact_attempt(self, attempt: ContactAttempt) -> None:
        """Raises ``MissingReference`` for an unknown case."""
        ...

    async def list_contact_attempts(self, number: str) -> list[ContactAttempt]:
        """The case's attempts by time."""
        ...

    # --- sessions -------------------------------------------------------------------------

    async def insert_session(self, session: SessionRecord) -> None:
        """Stored with its code unused and not ended, whatever the record says.

        Raises:
            DuplicateKey: the id or the code hash is taken.
            MissingReference: no such case.
        """
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def session_by_code_hash(self, code_hash: str) -> SessionRecord | None: ...

    async def claim_code(self, session_id: str, now: datetime) -> bool:
        """Mark the code used; False if it was used already or expired by ``now``."""
        ...

    async def set_session_state(
        self,
        session_id: str,
        state: str,
        *,
        ended_at: datetime | None = None,
        end_reason: str | None = None,
    ) -> None:
        """Set the state; ``ended_at`` and ``end_reason`` change only when given."""
        ...

    async def set_session_holder(
        self, session_id: str, user: str | None, display: str | None, level: str | None
    ) -> None:
        """Who has the session in hand now (all None: nobody)."""
        ...

    async def list_sessions_for_case(self, number: str) -> list[SessionRecord]:
        """The case's sessions by creation time."""
        ...

    async def queue(self, states: Sequence[str]) -> list[QueueEntry]:
        """Sessions in ``states`` with their cases: by severity, due time, session creation."""
        ...

    async def add_invitation(self, invitation: Invitation) -> int:
        """Store an open invitation and return its id (ids grow).

        Raises:
            MissingReference: no such session.
        """
        ...

    async def list_invitations(self, session_id: str) -> list[Invitation]:
        """The session's invitations, oldest first."""
        ...

    async def open_invitations(self, session_ids: Sequence[str]) -> list[Invitation]:
        """Invitations to these sessions that nobody accepted yet, oldest first."""
        ...

    async def accept_invitation(self, invitation_id: int, at: datetime, by_user: str) -> bool:
        """Mark accepted; False if it was accepted already (or does not exist)."""
        ...

    # --- audit ----------------------------------------------------------------------------

    async def append_audit(self, record: AuditRecord) -> AuditEvent:
        """Chain ``record`` after the head (``seq`` + 1, or 1 after the genesis hash) and make
        it the head. Only ``AuditLog`` calls this, inside the change's transaction."""
        ...

    async def audit_head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the newest event; None while the log is empty."""
        ...

    def audit_rows(self, batch: int = 1000) -> AsyncIterator[StoredRow]:
        """Every audit row in storage order, read ``batch`` at a time."""
        ...

    async def query_audit(self, query: AuditQuery) -> list[StoredRow]:
        """Rows after ``after_seq`` matching every given filter (``since`` inclusive,
        ``until`` exclusive), by ``seq``, at most ``limit``."""
        ...

    async def add_audit_key(self, key: AuditKeyRecord) -> None:
        """Stored active (``private_pem`` kept, not retired)."""
        ...

    async def retire_audit_keys(self, at: datetime) -> None:
        """Retire the active audit key and forget its private half; it only verifies now."""
        ...

    async def list_audit_keys(self) -> list[AuditKeyRecord]:
        """Every audit key, retired ones included, oldest first."""
        ...

    async def add_audit_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Raises ``DuplicateKey`` for a ``seq`` signed already and ``MissingReference`` for
        an unknown kid."""
        ...

    async def latest_audit_checkpoint(self) -> Checkpoint | None:
        """The checkpoint of the highest ``seq``."""
        ...
