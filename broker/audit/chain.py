"""Hash chain over audit events: canonical encoding, linking and verification.

Pure: the store hands rows in, this module says whether they form an intact chain. Each event's
hash covers its sequence number, its content and the previous event's hash, so editing a row
breaks its own hash, deleting one breaks the next row's link (and leaves a gap in ``seq``),
and swapping two rows breaks both. Truncating the tail is caught by comparing the last event
with the chain head the store keeps beside the events, but one UPDATE of that head hides it;
``pins`` (signed checkpoints and exported anchors, ``broker.audit.checkpoint``) name hashes the
chain must still hold, which the head record alone cannot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    """What the caller says happened; the chain adds ``seq``, ``prev_hash`` and ``hash``."""

    at: datetime
    actor: str
    actor_role: str
    action: str
    client_addr: str | None = None
    case_number: str | None = None
    session_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEvent:
    """One stored, chained event."""

    seq: int
    at: str
    actor: str
    actor_role: str
    client_addr: str | None
    action: str
    case_number: str | None
    session_id: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "actor_role": self.actor_role,
            "client_addr": self.client_addr,
            "action": self.action,
            "case": self.case_number,
            "session": self.session_id,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical(value: Mapping[str, Any]) -> str:
    """JSON with sorted keys and no whitespace: one byte string per logical content."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    seq: int,
    at: str,
    actor: str,
    actor_role: str,
    client_addr: str | None,
    action: str,
    case_number: str | None,
    session_id: str | None,
    details_json: str,
    prev_hash: str,
) -> str:
    """SHA-256 over the previous hash and the canonical form of the event's fields."""
    body = canonical(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "actor_role": actor_role,
            "client_addr": client_addr,
            "action": action,
            "case": case_number,
            "session": session_id,
            "details": details_json,
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def chain_next(record: AuditRecord, seq: int, prev_hash: str) -> AuditEvent:
    """Build the stored event that follows ``prev_hash`` at position ``seq``."""
    at = record.at.isoformat(timespec="microseconds")
    details = dict(record.details)
    digest = event_hash(
        seq,
        at,
        record.actor,
        record.actor_role,
        record.client_addr,
        record.action,
        record.case_number,
        record.session_id,
        canonical(details),
        prev_hash,
    )
    return AuditEvent(
        seq=seq,
        at=at,
        actor=record.actor,
        actor_role=record.actor_role,
        client_addr=record.client_addr,
        action=record.action,
        case_number=record.case_number,
        session_id=record.session_id,
        details=details,
        prev_hash=prev_hash,
        hash=digest,
    )


@dataclass(frozen=True)
class StoredRow:
    """An audit row exactly as read from storage, details still as stored text."""

    seq: int
    at: str
    actor: str
    actor_role: str
    client_addr: str | None
    action: str
    case_number: str | None
    session_id: str | None
    details_json: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_hash: str = GENESIS_HASH


class Pin(NamedTuple):
    """A ``(seq, hash)`` the chain must still contain, and where the claim comes from."""

    seq: int
    hash: str
    source: str
    """Names the claim in messages, e.g. "the newest signed checkpoint"."""


def verify_chain(
    rows: Iterable[StoredRow],
    head: tuple[int, str] | None = None,
    pins: Iterable[Pin] = (),
) -> VerifyResult:
    """Walk rows in storage order and report the first one that breaks the chain.

    Args:
        rows: every audit row, ordered by ``seq`` as stored.
        head: the ``(seq, hash)`` the store recorded for its latest append, if any.
        pins: hashes the chain must hold at their ``seq``, already trusted by the caller
            (signatures checked); a chain that ends before a pin was cut short.

    Returns:
        ``ok`` with the number of rows checked, or the first bad ``seq`` and why.
    """
    pinned: dict[int, list[Pin]] = {}
    for pin in pins:
        pinned.setdefault(pin.seq, []).append(pin)
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for row in rows:
        if row.seq != expected_seq:
            return VerifyResult(
                False, checked, row.seq, f"expected seq {expected_seq}, found {row.seq}", prev_hash
            )
        if row.prev_hash != prev_hash:
            return VerifyResult(
                False, checked, row.seq, "prev_hash does not match the previous event", prev_hash
            )
        recomputed = event_hash(
            row.seq,
            row.at,
            row.actor,
            row.actor_role,
            row.client_addr,
            row.action,
            row.case_number,
            row.session_id,
            row.details_json,
            row.prev_hash,
        )
        if recomputed != row.hash:
            return VerifyResult(
                False, checked, row.seq, "content does not match its hash", prev_hash
            )
        for pin in pinned.get(row.seq, ()):
            if pin.hash != row.hash:
                return VerifyResult(
                    False,
                    checked,
                    row.seq,
                    f"event seq {row.seq} does not match {pin.source}: events up to seq "
                    f"{row.seq} were rewritten, or cut off and the chain appended to again",
                    prev_hash,
                )
        prev_hash = row.hash
        expected_seq += 1
        checked += 1
    beyond = [pin for pin in sorted(pinned) if pin >= expected_seq]
    if beyond:
        pin = pinned[beyond[-1]][0]
        return VerifyResult(
            False,
            checked,
            expected_seq,
            f"chain TRUNCATED: it ends at seq {expected_seq - 1}, but {pin.source} covers "
            f"seq {pin.seq}; events from seq {expected_seq} on were cut off",
            prev_hash,
        )
    if head is not None and head != (expected_seq - 1, prev_hash):
        return VerifyResult(
            False,
            checked,
            head[0] if head[0] >= expected_seq else expected_seq - 1,
            f"chain ends at seq {expected_seq - 1} but the recorded head is seq {head[0]}",
            prev_hash,
        )
    return VerifyResult(True, checked, head_hash=prev_hash)
