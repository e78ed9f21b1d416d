"""Store contract: cases, their contact attempts and the customer's answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.store.base import Store
from broker.store.errors import DuplicateKey, MissingReference
from broker.store.records import ContactAttempt, CustomerFeedback
from tests.contract.samples import MADRID_WINTER, at, case, with_case, with_session


async def test_a_case_round_trips_every_field(store: Store) -> None:
    full = case(
        "C-1",
        first_response_at=at(3).astimezone(MADRID_WINTER),
        first_response_met=True,
        last_customer_response_at=at(4),
        cancelled_at=at(5),
        cancelled_by="rita",
        cancel_reason="opened twice",
        breach_recorded_at=at(6),
    )
    async with store.transaction():
        await store.insert_case(full)
        await store.insert_case(case("C-2", first_response_met=False))
    assert await store.get_case("C-1") == full
    assert (await store.get_case("C-2")) == case("C-2", first_response_met=False)
    assert await store.get_case("C-3") is None


async def test_a_case_number_is_taken_once(store: Store) -> None:
    await with_case(store, "C-1")
    with pytest.raises(DuplicateKey) as refused:
        async with store.transaction():
            await store.insert_case(case("C-1", customer_name="Someone Else"))
    assert refused.value.message == "a case with the same identifier already exists"
    assert (await store.get_case("C-1")) == case("C-1")


async def test_cases_listed_by_severity_due_and_creation(store: Store) -> None:
    wanted = [
        case("A", severity=1, response_due=at(90)),
        case("B", severity=2, response_due=at(30), created_at=at(2)),
        case("C", severity=2, response_due=at(30), created_at=at(3), status="resolved"),
        case("D", severity=2, response_due=at(60)),
        case("E", severity=4, response_due=at(1), status="awaiting_customer"),
    ]
    async with store.transaction():
        for record in reversed(wanted):
            await store.insert_case(record)
    assert await store.list_cases() == wanted
    assert await store.list_cases([]) == wanted
    listed = await store.list_cases(["open", "awaiting_customer"])
    assert [c.number for c in listed] == ["A", "B", "D", "E"]


async def test_update_case_changes_only_mutable_fields(store: Store) -> None:
    await with_case(store, "C-1")
    async with store.transaction():
        await store.update_case(
            "C-1",
            status="in_progress",
            updated_at=at(7),
            first_response_at=at(7),
            first_response_met=False,
            severity=1,
            plan="basic",
            response_due=at(20),
            breach_recorded_at=at(21),
        )
    assert await store.get_case("C-1") == case(
        "C-1",
        status="in_progress",
        updated_at=at(7),
        first_response_at=at(7),
        first_response_met=False,
        severity=1,
        plan="basic",
        response_due=at(20),
        breach_recorded_at=at(21),
    )
    for bad in ({}, {"created_by": "eve"}, {"customer_name": "X"}, {"status": "open", "x": 1}):
        with pytest.raises(ValueError):
            async with store.transaction():
                await store.update_case("C-1", **bad)
    assert (await store.get_case("C-1") or case("gone")).status == "in_progress"


async def test_breach_candidates(store: Store) -> None:
    now = at(100)
    records = [
        case("unanswered-late", response_due=at(50)),
        case("unanswered-in-time", response_due=at(150)),
        case("unanswered-inactive", response_due=at(10), status="resolved"),
        case(
            "answered-late",
            response_due=at(40),
            first_response_at=at(45),
            first_response_met=False,
            status="resolved",
        ),
        case(
            "answered-late-recorded",
            response_due=at(30),
            first_response_at=at(45),
            first_response_met=False,
            breach_recorded_at=at(46),
        ),
        case(
            "answered-in-time",
            response_due=at(20),
            first_response_at=at(5),
            first_response_met=True,
        ),
    ]
    async with store.transaction():
        for record in records:
            await store.insert_case(record)
    found = await store.breach_candidates(now, ["open", "in_progress"])
    assert [c.number for c in found] == ["answered-late", "unanswered-late"]


async def test_contact_attempts_by_time(store: Store) -> None:
    await with_case(store, "C-1")
    late = ContactAttempt("C-1", at(9), "rita", "phone", "no answer")
    early = ContactAttempt("C-1", at(2).astimezone(MADRID_WINTER), "eve", "email", "")
    async with store.transaction():
        await store.add_contact_attempt(late)
        await store.add_contact_attempt(early)
    assert await store.list_contact_attempts("C-1") == [early, late]
    assert await store.list_contact_attempts("C-2") == []
    with pytest.raises(MissingReference) as refused:
        async with store.transaction():
            await store.add_contact_attempt(replace(late, case_number="C-404"))
    assert refused.value.entity == "contact attempt"


async def test_customer_answers_in_the_order_given(store: Store) -> None:
    await with_session(store, "s-1", "C-1")
    first = CustomerFeedback("C-1", "s-1", at(9), False, "still broken")
    second = CustomerFeedback("C-1", "s-1", at(8), True, "")  # given later, older clock
    async with store.transaction():
        await store.add_customer_feedback(first)
        await store.add_customer_feedback(second)
    assert await store.list_customer_feedback("C-1") == [first, second]
    for orphan in (replace(first, case_number="C-404"), replace(first, session_id="s-404")):
        with pytest.raises(MissingReference):
            async with store.transaction():
                await store.add_customer_feedback(orphan)
    assert await store.list_customer_feedback("C-1") == [first, second]
