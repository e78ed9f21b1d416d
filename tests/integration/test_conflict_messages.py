"""409 answers say what happened in the broker's words, and advice that the rules allow."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from broker.errors import Conflict
from broker.storage import transaction
from broker.store.errors import AppendOnly, DuplicateKey, MissingReference
from broker.store.records import SessionRecord
from broker.store.sqlite import SQLiteStore
from broker.types import Role
from tests.conftest import Broker
from tests.integration.test_api_input import CASE

# What SQLite and its Python module put in their messages: none of it may reach a client.
SQLITE_WORDS = re.compile(r"unique|constraint|sqlite|integrity|cases\.number|failed", re.I)


async def test_duplicate_case_number_409_has_no_sqlite_text(broker: Broker) -> None:
    rita = await broker.staff("rita", Role.RSE)
    body = {**CASE, "number": "EXT-4711"}
    await broker.call("POST", "/api/v1/cases", status=201, headers=rita, json=body)
    again = await broker.call("POST", "/api/v1/cases", status=409, headers=rita, json=body)
    assert again["error"] == "conflict"
    assert again["message"] == "a case with the same identifier already exists"
    assert not SQLITE_WORDS.search(str(again))


async def test_store_refusals_are_worded_by_the_broker(broker: Broker) -> None:
    """Every kind of refused write, straight at the store: its own errors, worded by the broker
    (not by SQLite), and the service layer's one mapping of them to a 409."""
    store, now = broker.services.store, broker.clock()
    assert isinstance(store, SQLiteStore)  # _write: a statement no Store method would send
    orphan = SessionRecord(
        id="s-orphan",
        case_number="NO-SUCH-CASE",
        created_by="rita",
        engineer_display="Rita",
        engineer_level="L2",
        created_at=now,
        code_hash="h" * 64,
        code_expires_at=now + timedelta(minutes=10),
        code_used_at=None,
        state="waiting",
        ended_at=None,
        end_reason=None,
    )
    with pytest.raises(MissingReference) as missing:
        async with store.transaction():
            await store.insert_session(orphan)
    assert missing.value.message == "the session refers to a record that does not exist"
    with pytest.raises(AppendOnly) as append_only:
        async with store.transaction():
            await store._write("DELETE FROM audit_events")
    assert append_only.value.message == "stored audit events cannot be changed or deleted"
    with pytest.raises(DuplicateKey) as duplicate:
        async with store.transaction():
            await store.put_secret("code_pepper", b"again")
    assert duplicate.value.message == "a secret with the same identifier already exists"
    with pytest.raises(Conflict) as refused:
        async with transaction(store):
            await store.put_secret("code_pepper", b"again")
    assert refused.value.message == duplicate.value.message
    assert isinstance(refused.value.__cause__, DuplicateKey)


async def _resolved_case(broker: Broker, headers: dict[str, str]) -> str:
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=headers, json=CASE)
    number = str(case["number"])
    session = await broker.call(
        "POST", f"/api/v1/cases/{number}/sessions", status=201, headers=headers
    )
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    customer = {"Authorization": f"Bearer {joined['customer_token']}"}
    done = await broker.call(
        "POST", "/api/v1/customer/confirm", status=200, headers=customer, json={"solved": True}
    )
    assert done["status"] == "resolved"
    return number


async def test_resolved_case_can_be_reopened_as_the_409_says(broker: Broker) -> None:
    rita = await broker.staff("rita", Role.RSE)
    number = await _resolved_case(broker, rita)
    refused = await broker.call(
        "POST", f"/api/v1/cases/{number}/sessions", status=409, headers=rita
    )
    assert "reopen it first" in refused["message"] and "in_progress" in refused["message"]
    await broker.call(
        "POST",
        f"/api/v1/cases/{number}/status",
        status=200,
        headers=rita,
        json={"status": "in_progress"},
    )
    await broker.call("POST", f"/api/v1/cases/{number}/sessions", status=201, headers=rita)


async def test_closed_case_409_does_not_say_reopen(broker: Broker) -> None:
    rita = await broker.staff("rita", Role.RSE)
    number = await _resolved_case(broker, rita)
    await broker.call(
        "POST",
        f"/api/v1/cases/{number}/status",
        status=200,
        headers=rita,
        json={"status": "closed"},
    )
    refused = await broker.call(
        "POST", f"/api/v1/cases/{number}/sessions", status=409, headers=rita
    )
    assert "reopen it first" not in refused["message"]
    assert "cannot be reopened" in refused["message"] and "open a new case" in refused["message"]
    # And it is true: the case rules refuse the move back.
    await broker.call(
        "POST",
        f"/api/v1/cases/{number}/status",
        status=409,
        headers=rita,
        json={"status": "in_progress"},
    )
