"""Records for the store contract tests, with fields that make a round trip visible (times
with microseconds, a non-UTC zone given in, optional fields set)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from broker.store.base import Store
from broker.store.records import CaseRecord, SessionRecord, UserRecord

T0 = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def user(name: str, **changes: Any) -> UserRecord:
    record = UserRecord(
        name=name,
        display_name=name.title(),
        role="rse",
        password_hash=f"$argon2id$hash-of-{name}",
        disabled=False,
        created_at=T0,
    )
    return replace(record, **changes)


def case(number: str, **changes: Any) -> CaseRecord:
    record = CaseRecord(
        number=number,
        customer_name="Ana Ruiz",
        company="Sur SL",
        contact="ana@example.com",
        product="Lathe 300",
        serial_number="SN-1",
        description="spindle stops",
        severity=2,
        plan="gold",
        status="open",
        created_by="rita",
        created_at=T0,
        updated_at=T0,
        response_due=at(60),
    )
    return replace(record, **changes)


def session(session_id: str, case_number: str, **changes: Any) -> SessionRecord:
    record = SessionRecord(
        id=session_id,
        case_number=case_number,
        created_by="rita",
        engineer_display="Rita Reyes",
        engineer_level="L2",
        created_at=T0,
        code_hash=f"hash-{session_id}",
        code_expires_at=at(10),
        code_used_at=None,
        state="waiting",
        holder_user="rita",
        holder_display="Rita Reyes",
        holder_level="L2",
    )
    return replace(record, **changes)


async def with_case(store: Store, number: str = "C-1", **changes: Any) -> CaseRecord:
    record = case(number, **changes)
    async with store.transaction():
        await store.insert_case(record)
    return record


async def with_session(
    store: Store, session_id: str = "s-1", case_number: str = "C-1", **changes: Any
) -> SessionRecord:
    if await store.get_case(case_number) is None:
        await with_case(store, case_number)
    record = session(session_id, case_number, **changes)
    async with store.transaction():
        await store.insert_session(record)
    return record


# A zone other than UTC: the store keeps the instant, whatever zone it was given in.
MADRID_WINTER = timezone(timedelta(hours=1))
