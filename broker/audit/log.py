"""The audit log as the rest of the broker sees it: append, search, verify, export.

Every state change and API action goes through ``AuditLog.record`` inside the same store
transaction as the change itself, so a change is never committed without its event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from broker.audit.chain import AuditEvent, AuditRecord, StoredRow, VerifyResult, verify_chain
from broker.store.records import AuditQuery


@dataclass(frozen=True)
class Actor:
    """Who did something: a staff user with a role, or the customer or agent of a session."""

    name: str
    role: str
    client_addr: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(name="system", role="system")


class AuditStore(Protocol):
    async def append_audit(self, record: AuditRecord) -> AuditEvent: ...

    async def audit_head(self) -> tuple[int, str] | None: ...

    def audit_rows(self, batch: int = 1000) -> AsyncIterator[StoredRow]: ...

    async def query_audit(self, query: AuditQuery) -> list[StoredRow]: ...


def row_to_json(row: StoredRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "actor_role": row.actor_role,
        "client_addr": row.client_addr,
        "action": row.action,
        "case": row.case_number,
        "session": row.session_id,
        "details": json.loads(row.details_json),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


class AuditLog:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    async def record(
        self,
        actor: Actor,
        action: str,
        *,
        at: datetime,
        case_number: str | None = None,
        session_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event; the caller holds the store's transaction."""
        return await self._store.append_audit(
            AuditRecord(
                at=at,
                actor=actor.name,
                actor_role=actor.role,
                client_addr=actor.client_addr,
                action=action,
                case_number=case_number,
                session_id=session_id,
                details=dict(details or {}),
            )
        )

    async def search(self, query: AuditQuery) -> list[StoredRow]:
        return await self._store.query_audit(query)

    async def verify(self) -> VerifyResult:
        rows = [row async for row in self._store.audit_rows()]
        return verify_chain(rows, await self._store.audit_head())

    async def export_lines(self) -> AsyncIterator[str]:
        """Every event as one JSON line, in chain order."""
        async for row in self._store.audit_rows():
            yield json.dumps(row_to_json(row), sort_keys=True, ensure_ascii=False)
