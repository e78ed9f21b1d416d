"""Store contract: the audit chain, its head, queries, audit keys and signed checkpoints."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from broker.audit.chain import GENESIS_HASH, AuditRecord, chain_next, verify_chain
from broker.audit.checkpoint import Checkpoint
from broker.store.base import Store
from broker.store.errors import DuplicateKey, MissingReference
from broker.store.records import AuditKeyRecord, AuditQuery
from tests.contract.samples import T0, at


def record(minutes: float, actor: str = "rita", **changes: Any) -> AuditRecord:
    base = AuditRecord(
        at=at(minutes),
        actor=actor,
        actor_role="rse",
        action="case.created",
        client_addr="192.0.2.7",
        case_number="C-1",
        details={"n": minutes, "text": "ñ and \u2028"},
    )
    return replace(base, **changes)


async def test_appends_chain_from_the_genesis_hash(store: Store) -> None:
    assert await store.audit_head() is None
    async with store.transaction():
        first = await store.append_audit(record(1))
        second = await store.append_audit(record(2, session_id="s-1"))
    assert first == chain_next(record(1), 1, GENESIS_HASH)
    assert second == chain_next(record(2, session_id="s-1"), 2, first.hash)
    assert await store.audit_head() == (2, second.hash)
    rows = [row async for row in store.audit_rows()]
    assert verify_chain(rows, await store.audit_head()).ok
    assert [(r.seq, r.hash, r.prev_hash, r.action) for r in rows] == [
        (1, first.hash, GENESIS_HASH, "case.created"),
        (2, second.hash, first.hash, "case.created"),
    ]


async def test_audit_rows_come_in_batches_in_storage_order(store: Store) -> None:
    async with store.transaction():
        for minute in range(7):
            await store.append_audit(record(minute))
    assert [row.seq async for row in store.audit_rows(batch=3)] == list(range(1, 8))
    assert [row.seq async for row in store.audit_rows(batch=100)] == list(range(1, 8))


async def test_queries_filter_and_page(store: Store) -> None:
    async with store.transaction():
        await store.append_audit(record(1, "rita"))
        await store.append_audit(record(2, "eve", case_number="C-2"))
        await store.append_audit(record(3, "rita", session_id="s-1"))
        await store.append_audit(record(4, "eve", session_id="s-1"))
        await store.append_audit(record(5, "rita"))

    async def seqs(**query: Any) -> list[int]:
        return [row.seq for row in await store.query_audit(AuditQuery(**query))]

    assert await seqs() == [1, 2, 3, 4, 5]
    assert await seqs(case_number="C-1") == [1, 3, 4, 5]
    assert await seqs(session_id="s-1") == [3, 4]
    assert await seqs(actor="eve") == [2, 4]
    assert await seqs(actor="eve", session_id="s-1") == [4]
    assert await seqs(since=at(2), until=at(4)) == [2, 3]  # since inclusive, until exclusive
    assert await seqs(limit=2) == [1, 2]
    assert await seqs(after_seq=2, limit=2) == [3, 4]
    assert await seqs(actor="nobody") == []
    rows = await store.query_audit(AuditQuery(session_id="s-1", actor="rita"))
    assert [(r.actor, r.client_addr, r.session_id) for r in rows] == [("rita", "192.0.2.7", "s-1")]


async def test_audit_keys_retire_and_forget_their_private_half(store: Store) -> None:
    first = AuditKeyRecord("a1", "PUB1", "PRIV1", T0, None)
    async with store.transaction():
        await store.add_audit_key(first)
    assert await store.list_audit_keys() == [first]
    second = AuditKeyRecord("a2", "PUB2", "PRIV2", at(5), None)
    async with store.transaction():
        await store.retire_audit_keys(at(5))
        await store.add_audit_key(second)
    assert await store.list_audit_keys() == [
        replace(first, private_pem=None, retired_at=at(5)),
        second,
    ]
    with pytest.raises(DuplicateKey):
        async with store.transaction():
            await store.add_audit_key(second)


async def test_checkpoints_latest_by_seq_once_each_and_signed_by_a_known_key(
    store: Store,
) -> None:
    assert await store.latest_audit_checkpoint() is None
    async with store.transaction():
        await store.add_audit_key(AuditKeyRecord("a1", "PUB", "PRIV", T0, None))
    high = Checkpoint(9, "h9", "2026-03-02T10:00:00.000000+00:00", "a1", "sig9")
    low = Checkpoint(4, "h4", "2026-03-02T11:00:00.000000+00:00", "a1", "sig4")
    async with store.transaction():
        await store.add_audit_checkpoint(high)
        await store.add_audit_checkpoint(low)
    assert await store.latest_audit_checkpoint() == high
    with pytest.raises(DuplicateKey) as duplicate:
        async with store.transaction():
            await store.add_audit_checkpoint(replace(high, hash="other"))
    assert duplicate.value.entity == "audit checkpoint"
    with pytest.raises(MissingReference):
        async with store.transaction():
            await store.add_audit_checkpoint(replace(high, seq=10, kid="unknown"))
    assert await store.latest_audit_checkpoint() == high
