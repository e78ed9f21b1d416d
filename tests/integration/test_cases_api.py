"""Case lifecycle through the API: first response, status moves, both resolve routes, the
customer's answer and its window, cancellation, severity and plan changes, the broker's SLA
view with its metrics, and the plan list."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from broker.api.models import PlansOut
from broker.app import create_app, sweep
from broker.errors import CloseCode
from broker.sessions import sla
from broker.settings import Settings
from broker.store.records import iso
from broker.types import Role
from tests.conftest import Broker, BrokerTestServer, ClientFactory, FakeClock
from tests.integration.test_api_input import CASE
from tests.relay_peers import ScriptedAgent


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


# --- issue 11: the customer's answer, cancellation, terms, SLA view, plans ------------------

_AGENT_TOKENS: dict[str, str] = {}
"""Agent tokens of the sessions ``_joined`` made, by session id (for tests that connect one)."""


async def _joined(broker: Broker, headers: dict[str, str], number: str) -> tuple[str, str]:
    """A session on the case that the customer joined: (session id, customer token)."""
    session = await broker.call(
        "POST", f"/api/v1/cases/{number}/sessions", status=201, headers=headers
    )
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    _AGENT_TOKENS[session["id"]] = joined["agent_token"]
    return session["id"], joined["customer_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _audit(broker: Broker, number: str) -> list[dict[str, Any]]:
    if await broker.services.store.get_user("sam") is None:
        await broker.add_user("sam", Role.SECURITY)
    found = await broker.call(
        "GET", f"/api/v1/audit?case={number}", status=200, headers=await broker.login("sam")
    )
    events: list[dict[str, Any]] = found["events"]
    return events


def _metric(text: str, name: str, **labels: str) -> float:
    """A sample's value from the /metrics text (0 when the sample is absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        got = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if series.split("{")[0] == name and got == labels:
            return float(value)
    return 0.0


async def _metrics(broker: Broker) -> str:
    resp = await broker.client.get("/metrics")
    assert resp.status == 200
    return await resp.text()


async def test_customer_token_cannot_answer_after_the_confirm_window(broker: Broker) -> None:
    """The attack: a customer token (12 h) kept changing the case long after its session."""
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    session_id, token = await _joined(broker, headers, number)
    await broker.call(
        "POST", f"/api/v1/sessions/{session_id}/end", status=200, headers=headers, json={}
    )
    window = broker.services.settings.customer_confirm_window
    broker.clock.advance(seconds=window.total_seconds() - 1)
    inside = await broker.call(
        "POST",
        "/api/v1/customer/confirm",
        status=200,
        headers=_bearer(token),
        json={"solved": False, "comment": "still jams"},
    )
    assert inside["status"] == "in_progress"
    broker.clock.advance(seconds=2)
    for solved in (True, False):
        late = await broker.call(
            "POST",
            "/api/v1/customer/confirm",
            status=403,
            headers=_bearer(token),
            json={"solved": solved, "comment": "from a leaked token"},
        )
        assert late["error"] == "confirm_window_closed"
        assert "ended more than 60 minutes ago" in late["message"]
    headers = await broker.login("rita")
    case = await broker.call("GET", f"/api/v1/cases/{number}", status=200, headers=headers)
    assert case["status"] == "in_progress"  # nothing moved
    assert [f["comment"] for f in case["customer_feedback"]] == ["still jams"]


async def test_customer_answers_in_parallel_after_the_window_all_refused(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    session_id, token = await _joined(broker, headers, number)
    await broker.call(
        "POST", f"/api/v1/sessions/{session_id}/end", status=200, headers=headers, json={}
    )
    broker.clock.advance(hours=2)
    answers = await asyncio.gather(
        *(
            broker.client.post(
                "/api/v1/customer/confirm", headers=_bearer(token), json={"solved": True}
            )
            for _ in range(50)
        )
    )
    assert [r.status for r in answers] == [403] * 50
    case = await broker.services.cases.get(number)
    assert case.status == "in_progress"
    assert await broker.services.cases.feedback(number) == []


async def test_customer_comment_is_stored_audited_and_shown_to_staff(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    session_id, token = await _joined(broker, headers, number)
    for solved, comment in ((False, "the tray still jams"), (True, "works now, thanks")):
        await broker.call(
            "POST",
            "/api/v1/customer/confirm",
            status=200,
            headers=_bearer(token),
            json={"solved": solved, "comment": comment},
        )
    case = await broker.call("GET", f"/api/v1/cases/{number}", status=200, headers=headers)
    assert case["status"] == "resolved"
    assert [(f["solved"], f["comment"], f["session_id"]) for f in case["customer_feedback"]] == [
        (False, "the tray still jams", session_id),
        (True, "works now, thanks", session_id),
    ]
    answered = [e for e in await _audit(broker, number) if e["action"] == "case.customer_answered"]
    assert [(e["details"]["solved"], e["details"]["comment"]) for e in answered] == [
        (False, "the tray still jams"),
        (True, "works now, thanks"),
    ]
    assert all(e["actor_role"] == "customer" and e["session"] == session_id for e in answered)


async def test_cancel_needs_permission_and_a_reason(broker: Broker) -> None:
    headers = await broker.staff("dana", Role.DESK)
    sec = await broker.staff("sam", Role.SECURITY)
    number = await _open(broker, headers)
    forbidden = await broker.call(
        "POST",
        f"/api/v1/cases/{number}/cancel",
        status=403,
        headers=sec,
        json={"reason": "duplicate"},
    )
    assert forbidden["details"]["action"] == "cancel_case"
    for body in ({}, {"reason": "  "}, {"reason": "no"}, {"reason": "x" * 501}):
        resp = await broker.client.post(
            f"/api/v1/cases/{number}/cancel", headers=headers, json=body
        )
        assert resp.status == 422, body
    missing = await broker.client.post(
        "/api/v1/cases/NOPE-1/cancel", headers=headers, json={"reason": "duplicate"}
    )
    assert missing.status == 404
    assert (await broker.services.cases.get(number)).status == "open"


async def test_cancel_ends_live_sessions_and_is_not_a_resolution(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    session_id, token = await _joined(broker, headers, number)
    agent = await ScriptedAgent.join(broker.client, _AGENT_TOKENS[session_id], session_id)
    cancelled = await broker.call(
        "POST",
        f"/api/v1/cases/{number}/cancel",
        status=200,
        headers=headers,
        json={"reason": "opened on the wrong customer"},
    )
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancellation"]["by"] == "rita"
    assert cancelled["cancellation"]["reason"] == "opened on the wrong customer"
    # The live session ended, and its agent socket was closed as for any ended session.
    session = await broker.call(
        "GET", f"/api/v1/sessions/{session_id}", status=200, headers=headers
    )
    assert session["state"] == "ended"
    assert session["end_reason"] == "case cancelled: opened on the wrong customer"
    await agent.peer.wait(lambda: agent.peer.ws.closed)
    assert agent.peer.ws.close_code == CloseCode.SESSION_ENDED
    # Staff cannot resolve it, move it, reopen it, cancel it again or start work on it.
    for method, path, body in (
        ("POST", f"/api/v1/cases/{number}/resolve", None),
        ("POST", f"/api/v1/cases/{number}/status", {"status": "in_progress"}),
        ("POST", f"/api/v1/cases/{number}/status", {"status": "closed"}),
        ("POST", f"/api/v1/cases/{number}/cancel", {"reason": "again"}),
        ("POST", f"/api/v1/cases/{number}/sessions", None),
        ("PATCH", f"/api/v1/cases/{number}", {"severity": 1, "reason": "escalate"}),
    ):
        refused = await broker.call(method, path, status=409, headers=headers, json=body)
        assert refused["error"] in ("invalid_transition", "conflict"), refused
    # The customer's word still rules resolution (within the window after the session).
    done = await broker.call(
        "POST",
        "/api/v1/customer/confirm",
        status=200,
        headers=_bearer(token),
        json={"solved": True, "comment": "it was a duplicate, all fine"},
    )
    assert done["status"] == "resolved"
    events = await _audit(broker, number)
    cancel = [e for e in events if e["action"] == "case.cancelled"]
    assert len(cancel) == 1 and cancel[0]["actor"] == "rita"
    assert cancel[0]["details"] == {"from": "in_progress", "reason": "opened on the wrong customer"}
    moves = [e["details"] for e in events if e["action"] == "case.status_changed"]
    assert moves[-1] == {"from": "cancelled", "to": "resolved", "route": "customer_confirmed"}


async def test_parallel_cancels_cancel_once(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    answers = await asyncio.gather(
        *(
            broker.client.post(
                f"/api/v1/cases/{number}/cancel", headers=headers, json={"reason": f"dup {i}"}
            )
            for i in range(30)
        )
    )
    assert sorted(r.status for r in answers) == [200] + [409] * 29
    cancel = [e for e in await _audit(broker, number) if e["action"] == "case.cancelled"]
    assert len(cancel) == 1


async def test_customer_not_solved_reopens_a_cancelled_case(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers)
    _, token = await _joined(broker, headers, number)
    await broker.call(
        "POST",
        f"/api/v1/cases/{number}/cancel",
        status=200,
        headers=headers,
        json={"reason": "dup"},
    )
    reopened = await broker.call(
        "POST",
        "/api/v1/customer/confirm",
        status=200,
        headers=_bearer(token),
        json={"solved": False, "comment": "this is not a duplicate"},
    )
    assert reopened["status"] == "in_progress"


async def test_severity_and_plan_change_recomputes_the_due_time(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    number = await _open(broker, headers, severity=3, plan="premium")
    created = await broker.services.cases.get(number)
    changed = await broker.call(
        "PATCH",
        f"/api/v1/cases/{number}",
        status=200,
        headers=headers,
        json={"severity": 1, "reason": "production line down"},
    )
    assert changed["severity"] == 1
    assert changed["response_due"] == iso(created.created_at + timedelta(hours=1))
    # Plan change: professional is business hours in Madrid (Mon 23 Nov 2026, 11:00 local).
    moved = await broker.call(
        "PATCH",
        f"/api/v1/cases/{number}",
        status=200,
        headers=headers,
        json={"plan": "professional", "reason": "contract checked"},
    )
    plan = broker.services.cases.plans["professional"]
    assert moved["plan"] == "professional" and moved["severity"] == 1
    assert moved["response_due"] == iso(sla.response_due(plan, 1, created.created_at))
    terms = [e for e in await _audit(broker, number) if e["action"] == "case.terms_changed"]
    assert [e["details"]["from"]["severity"] for e in terms] == [3, 1]
    assert [e["details"]["to"]["severity"] for e in terms] == [1, 1]
    assert [e["details"]["to"]["plan"] for e in terms] == ["premium", "professional"]
    assert terms[0]["details"]["from"]["response_due"] == created.response_due.isoformat()
    assert terms[0]["details"]["reason"] == "production line down"


async def test_terms_change_refuses_bad_input(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    sec = await broker.staff("sam", Role.SECURITY)
    number = await _open(broker, headers)
    for body, status in (
        ({"reason": "nothing to change"}, 422),
        ({"severity": None, "reason": "null is not a value"}, 422),
        ({"plan": None, "reason": "null is not a value"}, 422),
        ({"severity": 5, "reason": "too severe"}, 422),
        ({"severity": "1", "reason": "a string"}, 422),
        ({"plan": "gold", "reason": "no such plan"}, 422),
        ({"severity": 1}, 422),
    ):
        resp = await broker.client.patch(f"/api/v1/cases/{number}", headers=headers, json=body)
        assert resp.status == status, (body, await resp.text())
    resp = await broker.client.patch(
        f"/api/v1/cases/{number}", headers=sec, json={"severity": 1, "reason": "not mine"}
    )
    assert resp.status == 403
    assert (await broker.services.cases.get(number)).severity == 3


async def test_a_case_answered_on_time_is_not_breached_later(broker: Broker) -> None:
    """The console used to turn this case red once its due time passed: the broker says no."""
    headers = await broker.staff("rita", Role.RSE)
    answered = await _open(broker, headers, severity=1)
    await _joined(broker, headers, answered)  # the session is the first response, at once
    waiting = await _open(broker, headers, severity=1)
    fresh = await broker.call("GET", f"/api/v1/cases/{waiting}", status=200, headers=headers)
    assert (fresh["breached"], fresh["response_seconds_left"]) == (False, 3600)
    broker.clock.advance(hours=3)
    headers = await broker.login("rita")
    listed = await broker.call("GET", "/api/v1/cases", status=200, headers=headers)
    by_number = {c["number"]: c for c in listed["cases"]}
    on_time = by_number[answered]
    assert (on_time["first_response_met"], on_time["breached"]) == (True, False)
    assert on_time["response_seconds_left"] is None
    late = by_number[waiting]
    assert (late["first_response_met"], late["breached"]) == (None, True)
    assert late["response_seconds_left"] == -2 * 3600
    assert late["sla_as_of"] == iso(broker.clock.now)
    # The session queue carries the same view for the case of each session.
    queue = await broker.call("GET", "/api/v1/sessions", status=200, headers=headers)
    assert [(e["case"]["number"], e["case"]["breached"]) for e in queue["sessions"]] == [
        (answered, False)
    ]


async def test_breaches_are_gauged_and_counted_once(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    app = broker.client.app
    on_time = await _open(broker, headers, severity=2)
    await broker.call("POST", f"/api/v1/cases/{on_time}/sessions", status=201, headers=headers)
    unanswered = await _open(broker, headers, severity=1)
    answered_late = await _open(broker, headers, severity=1, plan="premium")
    broker.clock.advance(hours=1, seconds=1)
    headers = await broker.login("rita")
    await broker.call(  # late, between two sweeps: still counted, once
        "POST",
        f"/api/v1/cases/{answered_late}/status",
        status=200,
        headers=headers,
        json={"status": "in_progress"},
    )
    await sweep(app)
    text = await _metrics(broker)
    assert _metric(text, "rsb_sla_open_breaches") == 1
    assert _metric(text, "rsb_sla_breaches_total", plan="premium", severity="1") == 2
    assert _metric(text, "rsb_sla_breaches_total", plan="premium", severity="2") == 0
    # Sweeping again, even many times at once, counts nothing twice.
    reports = await asyncio.gather(
        *(broker.services.cases.observe_breaches() for _ in range(20)), sweep(app)
    )
    assert sum(len(r.new) for r in reports if r is not None) == 0
    text = await _metrics(broker)
    assert _metric(text, "rsb_sla_breaches_total", plan="premium", severity="1") == 2
    # Answering the open breach closes it (the gauge falls) but the count stays.
    await broker.call(
        "POST",
        f"/api/v1/cases/{unanswered}/status",
        status=200,
        headers=headers,
        json={"status": "in_progress"},
    )
    await sweep(app)
    text = await _metrics(broker)
    assert _metric(text, "rsb_sla_open_breaches") == 0
    assert _metric(text, "rsb_sla_breaches_total", plan="premium", severity="1") == 2
    breached = [e for e in await _audit(broker, unanswered) if e["action"] == "case.sla_breached"]
    assert len(breached) == 1 and breached[0]["actor"] == "system"


async def test_cancelling_stops_the_sla_clock(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    early = await _open(broker, headers, severity=1)
    late = await _open(broker, headers, severity=1)
    await broker.call(
        "POST", f"/api/v1/cases/{early}/cancel", status=200, headers=headers, json={"reason": "dup"}
    )
    broker.clock.advance(hours=2)
    headers = await broker.login("rita")
    # Cancelled after its deadline, before any sweep: the breach is counted at cancellation.
    await broker.call(
        "POST", f"/api/v1/cases/{late}/cancel", status=200, headers=headers, json={"reason": "dup"}
    )
    await sweep(broker.client.app)
    stopped = await broker.call("GET", f"/api/v1/cases/{early}", status=200, headers=headers)
    assert (stopped["breached"], stopped["response_seconds_left"]) == (False, None)
    counted = await broker.call("GET", f"/api/v1/cases/{late}", status=200, headers=headers)
    assert counted["breached"] is True
    text = await _metrics(broker)
    assert _metric(text, "rsb_sla_open_breaches") == 0
    assert _metric(text, "rsb_sla_breaches_total", plan="premium", severity="1") == 1


async def test_plans_lists_the_configured_plans_and_severities(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock
) -> None:
    custom = replace(
        settings,
        plans={
            "gold": {"coverage": "24x7", "response_hours": {"1": 0.5, "2": 1, "3": 4, "4": 8}},
            "office": {
                "coverage": "business",
                "timezone": "America/New_York",
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "opens": "08:00",
                "closes": "18:00",
                "holidays": ["2026-12-25"],
                "response_hours": {"1": 2, "2": 4, "3": 8, "4": 16},
            },
        },
    )
    broker = Broker(await aiohttp_client(BrokerTestServer(create_app(custom, clock=clock))), clock)
    unauthenticated = await broker.client.get("/api/v1/plans")
    assert unauthenticated.status == 401
    headers = await broker.staff("dana", Role.DESK)
    listed = await broker.call("GET", "/api/v1/plans", status=200, headers=headers)
    assert [(s["severity"], s["name"]) for s in listed["severities"]] == [
        (1, "catastrophic"),
        (2, "severe"),
        (3, "moderate"),
        (4, "low"),
    ]
    assert listed["default_severity"] == 3
    assert [p["name"] for p in listed["plans"]] == ["gold", "office"]
    gold, office = listed["plans"]
    assert gold["coverage"] == "24x7" and gold["response_hours"]["1"] == 0.5
    assert office["business_hours"] == {
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "opens": "08:00",
        "closes": "18:00",
        "holidays": ["2026-12-25"],
    }
    PlansOut.model_validate_json(json.dumps(listed))  # the document's shape, exactly


async def test_a_database_from_before_cancellation_opens_and_cancels(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock, db_path: Path
) -> None:
    """A ``cases`` table made by an older broker gets the new columns when the store opens."""
    old_columns = (
        "number TEXT PRIMARY KEY, customer_name TEXT NOT NULL, company TEXT NOT NULL, "
        "contact TEXT NOT NULL, product TEXT NOT NULL, serial_number TEXT NOT NULL, "
        "description TEXT NOT NULL, severity INTEGER NOT NULL, plan TEXT NOT NULL, "
        "status TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, response_due TEXT NOT NULL, first_response_at TEXT, "
        "first_response_met INTEGER, last_customer_response_at TEXT"
    )
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"CREATE TABLE cases ({old_columns})")
        conn.execute(
            "INSERT INTO cases VALUES ('OLD-1', 'Ana', 'Sur', 'x', 'P', 'S', '', 2, 'premium', "
            "'open', 'rita', ?, ?, ?, NULL, NULL, NULL)",
            (iso(clock.now), iso(clock.now), iso(clock.now + timedelta(hours=2))),
        )
    broker = Broker(
        await aiohttp_client(BrokerTestServer(create_app(settings, clock=clock))), clock
    )
    headers = await broker.staff("rita", Role.RSE)
    old = await broker.call("GET", "/api/v1/cases/OLD-1", status=200, headers=headers)
    assert (old["cancellation"], old["breached"], old["response_seconds_left"]) == (
        None,
        False,
        7200,
    )
    cancelled = await broker.call(
        "POST", "/api/v1/cases/OLD-1/cancel", status=200, headers=headers, json={"reason": "dup"}
    )
    assert cancelled["status"] == "cancelled"
