"""Handing a session's agent part from a phone to the computer, against the real broker.

A phone spends the session code for the customer part only (``POST /api/v1/join`` with part
``customer``) and gets a handoff code; the computer redeems that code at the same endpoint for
the agent part. The tests try to break it: a second redemption, an expired code, a code
withdrawn by a newer one, a code of an ended session, another session's token, tokens of the
wrong kind, a handoff code offered for the customer part, a handoff code drawn equal to a new
session code, and the per-address and per-session budgets.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from broker.audit.log import row_to_json
from broker.errors import InvalidToken
from broker.sessions import codes, handoffs
from broker.settings import Settings
from broker.store.records import AuditQuery
from broker.types import Role
from tests.conftest import TEST_SETTINGS, Broker
from tests.integration.test_api_input import CASE

WINDOW_S = 60  # the per-address and per-session windows, shorter than the codes' 600 s life


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings.from_mapping(
        {"db": str(db_path), **TEST_SETTINGS, "join_attempt_window": WINDOW_S}
    )


async def _open(broker: Broker) -> dict[str, Any]:
    staff = await broker.staff("rita", Role.RSE, "Rita Reyes")
    return await _open_as(broker, staff)


async def _open_as(broker: Broker, staff: dict[str, str]) -> dict[str, Any]:
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=staff, json=CASE)
    session: dict[str, Any] = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=staff
    )
    return session


async def _phone_join(broker: Broker, code: str) -> dict[str, Any]:
    joined: dict[str, Any] = await broker.call(
        "POST", "/api/v1/join", status=200, json={"code": code, "part": "customer"}
    )
    return joined


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _actions(broker: Broker, session_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await broker.services.audit.search(AuditQuery(session_id=session_id, limit=1000))
    return [(e["action"], e["details"] or {}) for e in map(row_to_json, rows)]


async def _rejections(broker: Broker) -> list[str]:
    rows = await broker.services.audit.search(AuditQuery(limit=1000))
    return [
        e["details"]["reason"]
        for e in map(row_to_json, rows)
        if e["action"] == "session.join_rejected"
    ]


async def test_the_phone_gets_the_customer_part_and_the_computer_the_agent_part(
    broker: Broker,
) -> None:
    session = await _open(broker)
    phone = await _phone_join(broker, session["code"])
    assert phone["part"] == "customer"
    assert phone["agent_token"] is None  # the phone never holds one
    assert phone["session_id"] == session["id"]
    customer = await broker.services.auth.session_principal(phone["customer_token"], "customer")
    assert customer.session_id == session["id"]
    handoff = phone["handoff"]
    code = handoff["code"]
    assert len(code) == broker.services.settings.code_digits and code.isdigit()
    assert code != session["code"]
    assert handoff["code_display"] == codes.format_code(code)
    # The link carries the handoff code in its fragment only, like a join link.
    assert handoff["link"] == f"{broker.services.settings.base_url}/j#{code}"
    ttl = broker.services.settings.code_ttl
    assert datetime.fromisoformat(handoff["expires_at"]) == broker.clock.now + ttl
    assert handoff["expires_in"] == 600
    # The QR code is an SVG in a data: URL, and nothing in it can run.
    prefix, _, svg = handoff["qr_image"].partition(",")
    assert prefix.startswith("data:image/svg+xml")
    drawing = unquote(svg) if "base64" not in prefix else base64.b64decode(svg).decode()
    assert drawing.lstrip().startswith(("<svg", "<?xml")) and "<script" not in drawing
    # The session code is spent.
    await broker.call("POST", "/api/v1/join", status=410, json={"code": session["code"]})

    computer = await broker.call("POST", "/api/v1/join", status=200, json={"code": code})
    assert computer["part"] == "agent"
    assert computer["customer_token"] is None  # the phone keeps the customer part
    assert computer["handoff"] is None
    assert computer["case_number"] == session["case_number"]
    assert computer["engineer"] == phone["engineer"]
    agent = await broker.services.auth.session_principal(computer["agent_token"], "agent")
    assert agent.session_id == session["id"]

    actions = await _actions(broker, session["id"])
    names = [name for name, _ in actions]
    assert names.index("session.customer_joined") < names.index("session.handoff_issued")
    assert names.index("session.handoff_issued") < names.index("session.handoff_redeemed")
    assert ("session.customer_joined", {"agent_part": "handed_off"}) in actions


async def test_a_handoff_code_works_once(broker: Broker) -> None:
    session = await _open(broker)
    phone = await _phone_join(broker, session["code"])
    code = phone["handoff"]["code"]
    await broker.call("POST", "/api/v1/join", status=200, json={"code": code})
    body = await broker.call("POST", "/api/v1/join", status=410, json={"code": code})
    assert body["error"] == "code_rejected"
    # Five computers at once: exactly one gets the agent part.
    second = await broker.call(
        "POST", "/api/v1/customer/handoff", status=201, headers=_bearer(phone["customer_token"])
    )
    answers = await asyncio.gather(
        *(broker.client.post("/api/v1/join", json={"code": second["code"]}) for _ in range(5))
    )
    assert sorted(r.status for r in answers) == [200, 410, 410, 410, 410]


async def test_an_expired_handoff_code_is_refused(broker: Broker) -> None:
    session = await _open(broker)
    phone = await _phone_join(broker, session["code"])
    broker.clock.advance(seconds=broker.services.settings.code_ttl.total_seconds())
    await broker.call("POST", "/api/v1/join", status=410, json={"code": phone["handoff"]["code"]})
    assert (await _rejections(broker))[-1] == "expired"
    # The phone asks again and the new code works.
    again = await broker.call(
        "POST", "/api/v1/customer/handoff", status=201, headers=_bearer(phone["customer_token"])
    )
    ttl = broker.services.settings.code_ttl
    assert datetime.fromisoformat(again["expires_at"]) == broker.clock.now + ttl
    await broker.call("POST", "/api/v1/join", status=200, json={"code": again["code"]})


async def test_a_new_handoff_code_withdraws_the_previous_one(broker: Broker) -> None:
    session = await _open(broker)
    phone = await _phone_join(broker, session["code"])
    first = phone["handoff"]["code"]
    newer = await broker.call(
        "POST", "/api/v1/customer/handoff", status=201, headers=_bearer(phone["customer_token"])
    )
    assert newer["code"] != first
    await broker.call("POST", "/api/v1/join", status=410, json={"code": first})
    await broker.call("POST", "/api/v1/join", status=200, json={"code": newer["code"]})


async def test_another_sessions_token_hands_over_only_its_own_session(broker: Broker) -> None:
    staff = await broker.staff("rita", Role.RSE, "Rita Reyes")
    mine = await _open_as(broker, staff)
    theirs = await _open_as(broker, staff)
    my_phone = await _phone_join(broker, mine["code"])
    their_phone = await _phone_join(broker, theirs["code"])
    # Their token issues a code for their session: it never withdraws or redeems mine.
    their_code = await broker.call(
        "POST",
        "/api/v1/customer/handoff",
        status=201,
        headers=_bearer(their_phone["customer_token"]),
    )
    got = await broker.call("POST", "/api/v1/join", status=200, json={"code": their_code["code"]})
    assert got["session_id"] == theirs["id"]
    agent = await broker.services.auth.session_principal(got["agent_token"], "agent")
    assert agent.session_id == theirs["id"]
    mine_got = await broker.call(
        "POST", "/api/v1/join", status=200, json={"code": my_phone["handoff"]["code"]}
    )
    assert mine_got["session_id"] == mine["id"]


async def test_only_the_customer_token_issues_handoff_codes(broker: Broker) -> None:
    session = await _open(broker)
    code = (await _phone_join(broker, session["code"]))["handoff"]["code"]
    computer = await broker.call("POST", "/api/v1/join", status=200, json={"code": code})
    staff = await broker.login("rita")
    for headers in (_bearer(computer["agent_token"]), staff, {}, _bearer("not-a-token")):
        body = await broker.call("POST", "/api/v1/customer/handoff", status=401, headers=headers)
        assert body["error"] in {"unauthorized", "invalid_token"}
    with pytest.raises(InvalidToken):
        await broker.services.auth.session_principal(computer["agent_token"], "customer")


async def test_a_handoff_code_never_gives_the_customer_part(broker: Broker) -> None:
    session = await _open(broker)
    code = (await _phone_join(broker, session["code"]))["handoff"]["code"]
    body = await broker.call(
        "POST", "/api/v1/join", status=410, json={"code": code, "part": "customer"}
    )
    assert body["error"] == "code_rejected"
    # Refused that way, it was not spent: the computer can still redeem it.
    await broker.call("POST", "/api/v1/join", status=200, json={"code": code})


async def test_an_ended_session_withdraws_its_handoff_code(broker: Broker) -> None:
    session = await _open(broker)
    phone = await _phone_join(broker, session["code"])
    customer = _bearer(phone["customer_token"])
    await broker.call("POST", "/api/v1/customer/end", status=200, headers=customer, json={})
    await broker.call("POST", "/api/v1/join", status=410, json={"code": phone["handoff"]["code"]})
    body = await broker.call("POST", "/api/v1/customer/handoff", status=409, headers=customer)
    assert body["error"] == "conflict"


async def test_issuing_handoff_codes_is_limited_per_session(broker: Broker) -> None:
    staff = await broker.staff("rita", Role.RSE, "Rita Reyes")
    session = await _open_as(broker, staff)
    other = await _open_as(broker, staff)
    customer = _bearer((await _phone_join(broker, session["code"]))["customer_token"])
    other_customer = _bearer((await _phone_join(broker, other["code"]))["customer_token"])
    for _ in range(handoffs.ISSUES_PER_WINDOW):
        await broker.call("POST", "/api/v1/customer/handoff", status=201, headers=customer)
    resp = await broker.client.post("/api/v1/customer/handoff", headers=customer)
    assert resp.status == 429, await resp.text()
    assert 0 < int(resp.headers["Retry-After"]) <= WINDOW_S
    # Another session's budget is its own.
    await broker.call("POST", "/api/v1/customer/handoff", status=201, headers=other_customer)
    broker.clock.advance(seconds=WINDOW_S)
    await broker.call("POST", "/api/v1/customer/handoff", status=201, headers=customer)


async def test_redeeming_shares_the_per_address_budget_of_join_codes(broker: Broker) -> None:
    session = await _open(broker)
    code = (await _phone_join(broker, session["code"]))["handoff"]["code"]
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
    for _ in range(broker.services.settings.join_attempts_per_address):
        await broker.call("POST", "/api/v1/join", status=410, json={"code": wrong})
    # Budget spent: even the right handoff code is refused, before any look-up...
    body = await broker.call("POST", "/api/v1/join", status=429, json={"code": code})
    assert body["error"] == "rate_limited"
    # ...so it was not spent either, and works once the window has passed.
    broker.clock.advance(seconds=WINDOW_S)
    await broker.call("POST", "/api/v1/join", status=200, json={"code": code})


async def test_a_new_session_code_never_equals_a_live_handoff_code(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await _open(broker)
    handoff = (await _phone_join(broker, session["code"]))["handoff"]["code"]
    # The next code drawn is the live handoff code, then a fresh one.
    drawn = iter([handoff, "0123456789"])
    monkeypatch.setattr(codes, "generate_code", lambda digits=10: next(drawn))
    staff = await broker.login("rita")
    fresh = await _open_as(broker, staff)
    assert fresh["code"] == "0123456789"
    # The handoff code still hands over the first session only.
    got = await broker.call("POST", "/api/v1/join", status=200, json={"code": handoff})
    assert got["session_id"] == session["id"] and got["part"] == "agent"


async def test_a_handoff_code_never_equals_a_session_code(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await _open(broker)
    # The handoff code drawn first equals the (spent) session code: another is drawn.
    drawn = iter([session["code"], "0123456789"])
    monkeypatch.setattr(codes, "generate_code", lambda digits=10: next(drawn))
    phone = await _phone_join(broker, session["code"])
    assert phone["handoff"]["code"] == "0123456789"


async def test_the_join_part_field_is_validated(broker: Broker) -> None:
    session = await _open(broker)
    for part in ("agent", "", 1, None):
        body = await broker.call(
            "POST", "/api/v1/join", status=422, json={"code": session["code"], "part": part}
        )
        assert body["error"] == "validation_failed"
    # Nothing was spent by the refusals.
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    assert joined["part"] == "both" and joined["agent_token"] and joined["customer_token"]
    assert joined["handoff"] is None


def test_the_window_is_shorter_than_the_codes_life(settings: Settings) -> None:
    assert settings.join_attempt_window == timedelta(seconds=WINDOW_S) < settings.code_ttl
