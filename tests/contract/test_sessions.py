"""Store contract: sessions, their codes, holders, the queue and invitations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.store.base import Store
from broker.store.errors import DuplicateKey, MissingReference
from broker.store.records import Invitation, QueueEntry
from tests.contract.samples import at, case, session, with_case, with_session


async def test_a_session_is_stored_unused_and_not_ended(store: Store) -> None:
    await with_case(store, "C-1")
    given = session("s-1", "C-1", code_used_at=at(1), ended_at=at(2), end_reason="x")
    async with store.transaction():
        await store.insert_session(given)
    stored = replace(given, code_used_at=None, ended_at=None, end_reason=None)
    assert await store.get_session("s-1") == stored
    assert await store.session_by_code_hash("hash-s-1") == stored
    assert await store.get_session("s-2") is None
    assert await store.session_by_code_hash("hash-s-2") is None


async def test_session_ids_and_code_hashes_are_unique(store: Store) -> None:
    await with_session(store, "s-1", "C-1")
    for clash in (
        session("s-1", "C-1", code_hash="other"),
        session("s-2", "C-1", code_hash="hash-s-1"),
    ):
        with pytest.raises(DuplicateKey) as refused:
            async with store.transaction():
                await store.insert_session(clash)
        assert refused.value.entity == "session"
    assert await store.get_session("s-2") is None


async def test_a_session_needs_its_case(store: Store) -> None:
    with pytest.raises(MissingReference) as refused:
        async with store.transaction():
            await store.insert_session(session("s-1", "C-404"))
    assert refused.value.message == "the session refers to a record that does not exist"


async def test_a_code_is_claimed_once_and_only_before_it_expires(store: Store) -> None:
    await with_session(store, "s-1", "C-1", code_expires_at=at(10))
    await with_session(store, "s-2", "C-1", code_expires_at=at(10))
    async with store.transaction():
        assert await store.claim_code("s-1", at(9)) is True
        assert await store.claim_code("s-1", at(9)) is False
        assert await store.claim_code("s-2", at(10)) is False  # expired at that instant
        assert await store.claim_code("s-404", at(1)) is False
    assert (await store.get_session("s-1") or session("gone", "")).code_used_at == at(9)
    assert (await store.get_session("s-2") or session("gone", "")).code_used_at is None


async def test_state_changes_keep_the_end_once_set(store: Store) -> None:
    await with_session(store, "s-1", "C-1")
    async with store.transaction():
        await store.set_session_state("s-1", "active")
    assert (await store.get_session("s-1") or session("gone", "")).state == "active"
    async with store.transaction():
        await store.set_session_state("s-1", "ended", ended_at=at(30), end_reason="by_engineer")
        await store.set_session_state("s-1", "ended")
    ended = await store.get_session("s-1")
    assert ended is not None
    assert (ended.state, ended.ended_at, ended.end_reason) == ("ended", at(30), "by_engineer")


async def test_the_holder_moves_and_may_be_nobody(store: Store) -> None:
    await with_session(store, "s-1", "C-1")
    async with store.transaction():
        await store.set_session_holder("s-1", "eve", "Eve Engel", "L3")
    held = await store.get_session("s-1")
    assert held is not None and held.holder_json() == {
        "user": "eve",
        "display_name": "Eve Engel",
        "level": "L3",
    }
    async with store.transaction():
        await store.set_session_holder("s-1", None, None, None)
    nobody = await store.get_session("s-1")
    assert nobody is not None
    assert (nobody.holder_user, nobody.holder_display, nobody.holder_level) == (None, None, None)


async def test_sessions_of_a_case_by_creation(store: Store) -> None:
    await with_case(store, "C-1")
    await with_session(store, "late", "C-1", created_at=at(5))
    await with_session(store, "early", "C-1", created_at=at(1))
    await with_session(store, "other", "C-2")
    assert [s.id for s in await store.list_sessions_for_case("C-1")] == ["early", "late"]
    assert await store.list_sessions_for_case("C-404") == []


async def test_the_queue_orders_by_severity_due_and_creation(store: Store) -> None:
    cases = {
        "urgent": case("urgent", severity=1, response_due=at(90)),
        "soon": case("soon", severity=2, response_due=at(30)),
        "later": case("later", severity=2, response_due=at(60)),
    }
    async with store.transaction():
        for record in cases.values():
            await store.insert_case(record)
    sessions = [
        session("s-later", "later"),
        session("s-soon-2", "soon", created_at=at(2)),
        session("s-soon-1", "soon", created_at=at(1)),
        session("s-urgent", "urgent", state="active"),
        session("s-ended", "urgent", state="ended"),
    ]
    async with store.transaction():
        for stored in sessions:
            await store.insert_session(stored)
    queue = await store.queue(["waiting", "active"])
    assert [e.session.id for e in queue] == ["s-urgent", "s-soon-1", "s-soon-2", "s-later"]
    assert queue[0] == QueueEntry(sessions[3], cases["urgent"])
    assert [e.session.id for e in await store.queue(["ended"])] == ["s-ended"]


async def test_invitations_are_listed_and_accepted_once(store: Store) -> None:
    await with_session(store, "s-1", "C-1")
    await with_session(store, "s-2", "C-1")
    asked = [
        Invitation("s-1", at(1), "rita", "eve", None, "needs L3"),
        Invitation("s-1", at(2), "rita", None, "L3", "anyone at L3"),
        Invitation("s-2", at(3), "bob", "eve", None, "second opinion"),
    ]
    async with store.transaction():
        ids = [await store.add_invitation(invitation) for invitation in asked]
    assert ids == sorted(ids) and len(set(ids)) == 3
    stored = [replace(invitation, id=i) for invitation, i in zip(asked, ids, strict=True)]
    assert await store.list_invitations("s-1") == stored[:2]
    assert await store.open_invitations(["s-1", "s-2"]) == stored
    assert await store.open_invitations([]) == []
    async with store.transaction():
        assert await store.accept_invitation(ids[1], at(4), "eve") is True
        assert await store.accept_invitation(ids[1], at(5), "ana") is False
        assert await store.accept_invitation(max(ids) + 1, at(5), "ana") is False
    accepted = replace(stored[1], accepted_at=at(4), accepted_by="eve")
    assert await store.list_invitations("s-1") == [stored[0], accepted]
    assert await store.open_invitations(["s-1", "s-2"]) == [stored[0], stored[2]]


async def test_an_invitation_needs_its_session(store: Store) -> None:
    with pytest.raises(MissingReference) as refused:
        async with store.transaction():
            await store.add_invitation(Invitation("s-404", at(1), "rita", "eve", None, "x"))
    assert refused.value.entity == "invitation"
