"""Case lifecycle through the API: first response, status moves, both resolve routes."""

from __future__ import annotations

from broker.types import Role
from tests.conftest import Broker
from tests.integration.test_api_input import CASE


async def _open(broker: Broker, headers: dict[str, str], **extra: object) -> str:
    case = await broker.call(
        "POST", "/api/v1/cases", status=201, headers=headers, json={**CASE, **extra}
    )
    return str(case["number"])


async def test_generated_numbers_and_default_severity(broker: Broker) -> None:
    headers = await broker.staff("dana", Role.DESK)
    first = await _open(broker, headers)
    second = await _open(broker, headers)
    assert (first, second) == ("C-000001", "C-000002")
    case = await broker.call("GET", f"/api/v1/cases/{first}", status=200, headers=headers)
    assert case["severity"] == 3 and case["status"] == "open"
    assert case["first_response_at"] is None
    dup = await broker.client.post(
        "/api/v1/cases", json={**CASE, "number": "EXT-1"}, headers=headers
    )
    assert dup.status == 201
    again = await broker.client.post(
        "/api/v1/cases", json={**CASE, "number": "EXT-1"}, headers=headers
    )
    assert again.status == 409


async def test_first_response_late_is_recorded_as_missed(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers, severity=1)
    broker.clock.advance(hours=1, seconds=1)
    case = await broker.call(
        "POST",
        f"/api/v1/cases/{number}/status",
        status=200,
        headers=headers,
        json={"status": "in_progress"},
    )
    assert case["first_response_met"] is False


async def test_status_moves_are_checked(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    for status, code in (("closed", 409), ("resolved", 422)):
        resp = await broker.client.post(
            f"/api/v1/cases/{number}/status", json={"status": status}, headers=headers
        )
        assert resp.status == code, await resp.text()
    for status in ("in_progress", "awaiting_customer", "in_progress"):
        await broker.call(
            "POST",
            f"/api/v1/cases/{number}/status",
            status=200,
            headers=headers,
            json={"status": status},
        )


async def test_customer_confirmation_resolves(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    session = await broker.call(
        "POST", f"/api/v1/cases/{number}/sessions", status=201, headers=headers
    )
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    customer = {"Authorization": f"Bearer {joined['customer_token']}"}
    still = await broker.call(
        "POST", "/api/v1/customer/confirm", status=200, headers=customer, json={"solved": False}
    )
    assert still["status"] == "in_progress"
    done = await broker.call(
        "POST", "/api/v1/customer/confirm", status=200, headers=customer, json={"solved": True}
    )
    assert done["status"] == "resolved"
    closed = await broker.call(
        "POST",
        f"/api/v1/cases/{number}/status",
        status=200,
        headers=headers,
        json={"status": "closed"},
    )
    assert closed["status"] == "closed"
    # A closed case takes no new sessions.
    resp = await broker.client.post(f"/api/v1/cases/{number}/sessions", headers=headers)
    assert resp.status == 409


async def test_no_answer_resolution_needs_three_attempts_over_ten_days(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    await broker.call(
        "POST",
        f"/api/v1/cases/{number}/status",
        status=200,
        headers=headers,
        json={"status": "awaiting_customer"},
    )
    for day in range(3):
        await broker.call(
            "POST",
            f"/api/v1/cases/{number}/contact-attempts",
            status=201,
            headers=headers,
            json={"channel": "phone", "note": f"try {day}"},
        )
        early = await broker.client.post(f"/api/v1/cases/{number}/resolve", headers=headers)
        assert early.status == 409, "not yet: fewer than three attempts or ten days"
        broker.clock.advance(days=4)
        headers = await broker.login("rita")  # staff tokens last an hour
    resolved = await broker.call(
        "POST", f"/api/v1/cases/{number}/resolve", status=200, headers=headers
    )
    assert resolved["status"] == "resolved"


async def test_public_status_needs_the_serial_number(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    ok = await broker.call(
        "POST",
        "/api/v1/status",
        status=200,
        json={"case_number": number, "serial_number": CASE["serial_number"]},
    )
    assert ok["status"] == "open" and "contact" not in ok
    wrong = await broker.client.post(
        "/api/v1/status", json={"case_number": number, "serial_number": "nope"}
    )
    assert wrong.status == 404


async def test_escalation_is_audited_with_its_reason(broker: Broker) -> None:
    dana = await broker.staff("dana", Role.DESK, "Dana Desk")
    await broker.add_user("evan", Role.ENGINEERING)
    sec = await broker.staff("sam", Role.SECURITY)
    number = await _open(broker, dana)
    session = await broker.call(
        "POST", f"/api/v1/cases/{number}/sessions", status=201, headers=dana
    )
    sid = session["id"]
    await broker.call(
        "POST",
        f"/api/v1/sessions/{sid}/invite",
        status=201,
        headers=dana,
        json={"level": "L2", "reason": "needs a remote support engineer"},
    )
    await broker.call(
        "POST",
        f"/api/v1/sessions/{sid}/invite",
        status=201,
        headers=dana,
        json={"user": "evan", "reason": "firmware fault, design team"},
    )
    bad = await broker.client.post(
        f"/api/v1/sessions/{sid}/invite",
        headers=dana,
        json={"user": "sam", "reason": "not an engineer"},
    )
    assert bad.status == 422
    both = await broker.client.post(
        f"/api/v1/sessions/{sid}/invite",
        headers=dana,
        json={"user": "evan", "level": "L3", "reason": "both"},
    )
    assert both.status == 422
    detail = await broker.call("GET", f"/api/v1/sessions/{sid}", status=200, headers=dana)
    assert [i["reason"] for i in detail["invitations"]] == [
        "needs a remote support engineer",
        "firmware fault, design team",
    ]
    events = await broker.call("GET", f"/api/v1/audit?session={sid}", status=200, headers=sec)
    invites = [e for e in events["events"] if e["action"] == "session.invited"]
    assert [e["details"]["reason"] for e in invites] == [
        "needs a remote support engineer",
        "firmware fault, design team",
    ]
    assert all(e["actor"] == "dana" and e["actor_role"] == "desk" for e in invites)
    ended = await broker.call(
        "POST", f"/api/v1/sessions/{sid}/end", status=200, headers=dana, json={"reason": "fixed"}
    )
    assert ended["state"] == "ended"
    again = await broker.client.post(f"/api/v1/sessions/{sid}/end", headers=dana, json={})
    assert again.status == 409
