"""The hash chain, without a database: linking, and every kind of break it must report."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from broker.audit.chain import (
    GENESIS_HASH,
    AuditRecord,
    StoredRow,
    canonical,
    chain_next,
    verify_chain,
)


def _rows(n: int) -> list[StoredRow]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = chain_next(
            AuditRecord(
                at=datetime(2026, 1, 1, tzinfo=UTC),
                actor=f"u{seq}",
                actor_role="rse",
                action="x.y",
                details={"n": seq, "ü": "é"},
            ),
            seq,
            prev,
        )
        rows.append(
            StoredRow(
                event.seq,
                event.at,
                event.actor,
                event.actor_role,
                event.client_addr,
                event.action,
                event.case_number,
                event.session_id,
                canonical(event.details),
                event.prev_hash,
                event.hash,
            )
        )
        prev = event.hash
    return rows


def test_intact_chain_and_head() -> None:
    rows = _rows(5)
    result = verify_chain(rows, (5, rows[-1].hash))
    assert result.ok and result.checked == 5 and result.head_hash == rows[-1].hash
    assert verify_chain([], None).ok


def test_each_break_names_the_first_bad_event() -> None:
    rows = _rows(5)
    edited = [*rows[:2], dataclasses.replace(rows[2], actor="mallory"), *rows[3:]]
    assert verify_chain(edited).first_bad_seq == 3
    assert verify_chain([*rows[:2], *rows[3:]]).first_bad_seq == 4
    swapped = [*rows[:1], rows[2], rows[1], *rows[3:]]
    assert verify_chain(swapped).first_bad_seq == 3
    renumbered = [
        *rows[:1],
        dataclasses.replace(rows[2], seq=2),
        dataclasses.replace(rows[1], seq=3),
        *rows[3:],
    ]
    assert verify_chain(renumbered).first_bad_seq == 2
    truncated = verify_chain(rows[:4], (5, rows[-1].hash))
    assert not truncated.ok and "head" in (truncated.reason or "")
    relinked = dataclasses.replace(rows[1], prev_hash="f" * 64)
    assert verify_chain([rows[0], relinked, *rows[2:]]).first_bad_seq == 2
