"""Plain records the store reads and writes; no SQL or driver types leak past this module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds: one fixed format, so stored times sort as text."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class UserRecord:
    name: str
    display_name: str
    role: str
    password_hash: str
    disabled: bool
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class SigningKeyRecord:
    kid: str
    private_pem: str
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class AuditKeyRecord:
    """An audit-signing key; ``private_pem`` is None once retired (it then only verifies)."""

    kid: str
    public_key: str
    private_pem: str | None
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class CaseRecord:
    number: str
    customer_name: str
    company: str
    contact: str
    product: str
    serial_number: str
    description: str
    severity: int
    plan: str
    status: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    response_due: datetime
    first_response_at: datetime | None = None
    first_response_met: bool | None = None
    last_customer_response_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    breach_recorded_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "customer_name": self.customer_name,
            "company": self.company,
            "contact": self.contact,
            "product": self.product,
            "serial_number": self.serial_number,
            "description": self.description,
            "severity": self.severity,
            "plan": self.plan,
            "status": self.status,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "response_due": iso(self.response_due),
            "first_response_at": iso(self.first_response_at) if self.first_response_at else None,
            "first_response_met": self.first_response_met,
            "cancellation": (
                {
                    "at": iso(self.cancelled_at),
                    "by": self.cancelled_by,
                    "reason": self.cancel_reason,
                }
                if self.cancelled_at
                else None
            ),
        }


@dataclass(frozen=True)
class CustomerFeedback:
    """The customer's answer to "is the problem solved?", from one session."""

    case_number: str
    session_id: str
    at: datetime
    solved: bool
    comment: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "session_id": self.session_id,
            "solved": self.solved,
            "comment": self.comment,
        }


@dataclass(frozen=True)
class ContactAttempt:
    case_number: str
    at: datetime
    by_user: str
    channel: str
    note: str


@dataclass(frozen=True)
class SessionRecord:
    id: str
    case_number: str
    created_by: str
    engineer_display: str
    engineer_level: str | None
    created_at: datetime
    code_hash: str
    code_expires_at: datetime
    code_used_at: datetime | None
    state: str
    ended_at: datetime | None = None
    end_reason: str | None = None
    holder_user: str | None = None
    holder_display: str | None = None
    holder_level: str | None = None

    def holder_json(self) -> dict[str, Any] | None:
        """Who has the session in hand now, or None while nobody does."""
        if self.holder_user is None:
            return None
        return {
            "user": self.holder_user,
            "display_name": self.holder_display,
            "level": self.holder_level,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_number": self.case_number,
            "created_by": self.created_by,
            "engineer": {"display_name": self.engineer_display, "level": self.engineer_level},
            "holder": self.holder_json(),
            "created_at": iso(self.created_at),
            "code_expires_at": iso(self.code_expires_at),
            "code_used": self.code_used_at is not None,
            "state": self.state,
            "ended_at": iso(self.ended_at) if self.ended_at else None,
            "end_reason": self.end_reason,
        }


@dataclass(frozen=True)
class QueueEntry:
    """A session with the case fields the queue orders and displays by."""

    session: SessionRecord
    case: CaseRecord

    def to_json(self) -> dict[str, Any]:
        return {
            **self.session.to_json(),
            "case": {
                "number": self.case.number,
                "customer_name": self.case.customer_name,
                "company": self.case.company,
                "product": self.case.product,
                "severity": self.case.severity,
                "plan": self.case.plan,
                "status": self.case.status,
                "response_due": iso(self.case.response_due),
            },
        }


@dataclass(frozen=True)
class Invitation:
    session_id: str
    at: datetime
    by_user: str
    target_user: str | None
    target_level: str | None
    reason: str
    id: int | None = None
    accepted_at: datetime | None = None
    accepted_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "by": self.by_user,
            "user": self.target_user,
            "level": self.target_level,
            "reason": self.reason,
            "accepted_at": iso(self.accepted_at) if self.accepted_at else None,
            "accepted_by": self.accepted_by,
        }


@dataclass(frozen=True)
class AuditQuery:
    case_number: str | None = None
    session_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 1000
    after_seq: int = 0
