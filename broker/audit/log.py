"""The audit log as the rest of the broker sees it: append, search, verify, export.

Every state change and API action goes through ``AuditLog.record`` inside the same store
transaction as the change itself, so a change is never committed without its event; an event
with no change of its own (a search, a login failure) goes through ``AuditLog.append``. Nothing
else appends to the chain: ``Store.append_audit`` has this module as its only caller, and
``record`` takes only the names of ``AuditAction``.

The head of the chain is signed with the broker's audit key (``broker.audit.checkpoint``) every
``CHECKPOINT_EVERY_EVENTS`` events, at each sweep that finds it moved, at every export and on
``export_anchor``; ``verify`` checks the chain against the newest checkpoint and, if given, an
anchor file kept elsewhere. The audit key rotates with the token keys (``rsb keys rotate``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.audit.actions import AuditAction
from broker.audit.chain import (
    AuditEvent,
    AuditRecord,
    Pin,
    StoredRow,
    VerifyResult,
    verify_chain,
)
from broker.audit.checkpoint import (
    Anchor,
    Checkpoint,
    anchor_problem,
    checkpoint_problem,
    public_key_text,
    sign_checkpoint,
)
from broker.auth.keys import SigningKey
from broker.errors import Conflict
from broker.storage import transaction
from broker.store.base import Store
from broker.store.records import AuditKeyRecord, AuditQuery

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_EVENTS = 1000
"""Sign the head inside the transaction of every event whose ``seq`` is a multiple of this, so a
burst between two sweeps leaves at most this many events after the newest checkpoint."""


@dataclass(frozen=True)
class Actor:
    """Who did something: a staff user with a role, or the customer or agent of a session."""

    name: str
    role: str
    client_addr: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(name="system", role="system")


@dataclass(frozen=True)
class AuditVerification:
    """``VerifyResult`` of the chain plus which signed claims it was checked against."""

    result: VerifyResult
    checkpoint_seq: int | None = None
    anchor_seq: int | None = None


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
    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(
        self,
        actor: Actor,
        action: AuditAction | str,
        *,
        at: datetime,
        case_number: str | None = None,
        session_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event; the caller holds the store's transaction.

        Args:
            action: An ``AuditAction`` (a plain string is accepted if it is one's value,
                until the relay's and the state machine's names are members by type too).

        Raises:
            ValueError: ``action`` is not in the vocabulary; nothing is written.
        """
        event = await self._store.append_audit(
            AuditRecord(
                at=at,
                actor=actor.name,
                actor_role=actor.role,
                client_addr=actor.client_addr,
                action=AuditAction(action).value,
                case_number=case_number,
                session_id=session_id,
                details=dict(details or {}),
            )
        )
        if event.seq % CHECKPOINT_EVERY_EVENTS == 0:
            await self._sign(event.seq, event.hash, at)
        return event

    async def append(
        self,
        actor: Actor,
        action: AuditAction | str,
        *,
        at: datetime,
        case_number: str | None = None,
        session_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """``record`` in a transaction of its own, for an event that changes nothing else."""
        async with transaction(self._store):
            return await self.record(
                actor,
                action,
                at=at,
                case_number=case_number,
                session_id=session_id,
                details=details,
            )

    async def search(self, query: AuditQuery) -> list[StoredRow]:
        return await self._store.query_audit(query)

    async def verify(self, anchor: Anchor | None = None) -> AuditVerification:
        """Check the chain, its head record, the newest signed checkpoint and ``anchor``.

        Args:
            anchor: A head exported earlier (``export_anchor``), if the caller has one.

        Returns:
            The chain's result (``ok`` False with the reason if any check fails) and the
            ``seq`` of the checkpoint and anchor it was checked against.
        """
        keys = {key.kid: key.public_key for key in await self._store.list_audit_keys()}
        pins = []
        latest = await self._store.latest_audit_checkpoint()
        if latest is not None:
            problem = checkpoint_problem(latest, keys)
            if problem is not None:
                reason = f"the signed checkpoint at seq {latest.seq} cannot be trusted: {problem}"
                return AuditVerification(VerifyResult(False, 0, latest.seq, reason))
            pins.append(Pin(latest.seq, latest.hash, "the newest signed checkpoint"))
        if anchor is not None:
            problem = anchor_problem(anchor, keys)
            if problem is not None:
                seq = anchor.checkpoint.seq
                reason = f"the anchor for seq {seq} cannot be trusted: {problem}"
                return AuditVerification(VerifyResult(False, 0, seq, reason))
            pins.append(Pin(anchor.checkpoint.seq, anchor.checkpoint.hash, "the anchor"))
        rows = [row async for row in self._store.audit_rows()]
        result = verify_chain(rows, await self._store.audit_head(), pins)
        return AuditVerification(
            result,
            checkpoint_seq=latest.seq if latest else None,
            anchor_seq=anchor.checkpoint.seq if anchor else None,
        )

    async def checkpoint(self, at: datetime) -> Checkpoint | None:
        """Sign the current head unless a checkpoint already covers it (the sweeper's call).

        Args:
            at: Timezone-aware time of the checkpoint.

        Returns:
            The newest checkpoint; None while the log is empty, or when the head record is not
            past the newest checkpoint (the tail was cut off: signing the shorter head would
            hide it, so this logs an error instead).
        """
        async with transaction(self._store):
            return await self._checkpoint_head(at)

    async def begin_export(self, actor: Actor, at: datetime) -> None:
        """Record an export and sign the head it ends at; CLI and HTTP exports both call this.

        Args:
            actor: Who exports.
            at: Timezone-aware time of the export.
        """
        async with transaction(self._store):
            await self.record(actor, AuditAction.AUDIT_EXPORTED, at=at)
            await self._checkpoint_head(at)

    async def export_anchor(self, actor: Actor, at: datetime) -> Anchor:
        """Record the export of a head anchor, sign the head (that event included), return it.

        Args:
            actor: Who exports.
            at: Timezone-aware time of the export.

        Returns:
            The anchor to keep away from the database.

        Raises:
            Conflict: the head record is not past the newest signed checkpoint, so the log may
                have been cut short; an anchor of it would vouch for the shorter chain.
        """
        async with transaction(self._store):
            await self.record(actor, AuditAction.AUDIT_HEAD_EXPORTED, at=at)
            checkpoint = await self._checkpoint_head(at)
            if checkpoint is None:
                raise Conflict(
                    "the audit head is not past the newest signed checkpoint, so the log may "
                    "have been cut short; run rsb audit verify"
                )
            keys = {key.kid: key.public_key for key in await self._store.list_audit_keys()}
        return Anchor(checkpoint, keys[checkpoint.kid])

    async def rotate_key(self, actor: Actor, at: datetime) -> str:
        """Sign with a new audit key from now on; retired keys keep verifying what they signed.

        Args:
            actor: Who rotates.
            at: Timezone-aware time of the rotation.

        Returns:
            The new key's kid.
        """
        async with transaction(self._store):
            await self._store.retire_audit_keys(at)
            key = await self._new_key(at)
            await self.record(actor, AuditAction.AUDIT_KEY_ROTATED, at=at, details={"kid": key.kid})
            await self._checkpoint_head(at)
        return key.kid

    async def _checkpoint_head(self, at: datetime) -> Checkpoint | None:
        head = await self._store.audit_head()
        if head is None:
            return None
        latest = await self._store.latest_audit_checkpoint()
        if latest is not None and (latest.seq, latest.hash) == head:
            return latest
        if latest is not None and latest.seq >= head[0]:
            log.error(
                "audit head (seq %d) is not past the newest signed checkpoint (seq %d): the "
                "log may have been cut short; not signing it; run rsb audit verify",
                head[0],
                latest.seq,
            )
            return None
        return await self._sign(head[0], head[1], at)

    async def _sign(self, seq: int, hash: str, at: datetime) -> Checkpoint:
        """Sign ``(seq, hash)`` with the active key, made on first use; caller holds the tx."""
        active = [key for key in await self._store.list_audit_keys() if key.private_pem]
        if active:
            record = active[-1]
            assert record.private_pem is not None
            key = SigningKey.from_pem(record.kid, record.private_pem, record.created_at)
        else:
            key = await self._new_key(at)
        checkpoint = sign_checkpoint(key, seq, hash, at)
        await self._store.add_audit_checkpoint(checkpoint)
        # A copy outside the database: shipped logs are a witness an attacker with the file
        # cannot edit, and the line is an anchor file as it stands.
        anchor = Anchor(checkpoint, public_key_text(key))
        log.info("audit checkpoint %s", json.dumps(anchor.to_json(), sort_keys=True))
        return checkpoint

    async def _new_key(self, at: datetime) -> SigningKey:
        key = SigningKey.generate(at)
        await self._store.add_audit_key(
            AuditKeyRecord(key.kid, public_key_text(key), key.to_pem(), at, None)
        )
        return key

    async def export_lines(self) -> AsyncIterator[str]:
        """Every event as one JSON line, in chain order."""
        async for row in self._store.audit_rows():
            yield json.dumps(row_to_json(row), sort_keys=True, ensure_ascii=False)
