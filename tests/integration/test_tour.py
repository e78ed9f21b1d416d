"""The broker core as a user meets it, end to end on a real SQLite file and a real socket.

An admin creates users with the CLI; an engineer logs in, opens a sev-1 premium case and a
sev-3 professional case reported at 16:30 on a Friday, creates sessions, the customer joins
once, the queue orders the sessions, and ``rsb audit verify`` passes until a row is edited.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from broker.app import create_app
from broker.sessions import sla
from broker.settings import Settings
from tests.conftest import PASSWORD, Broker, ClientFactory, FakeClock, rsb


async def test_tour(aiohttp_client: ClientFactory, settings: Settings, db_path: Path) -> None:
    # The admin creates the first users with the CLI: the web has no setup endpoint.
    for name, role, display in (
        ("root", "admin", "Ada Admin"),
        ("rita", "rse", "Rita Reyes"),
    ):
        done = rsb(
            "users",
            "add",
            name,
            "--role",
            role,
            "--display-name",
            display,
            "--password-stdin",
            "--db",
            str(db_path),
            stdin=PASSWORD + "\n",
        )
        assert done.returncode == 0, done.stderr
    listed = rsb("users", "list", "--db", str(db_path))
    assert "rita\trse\tactive\tRita Reyes" in listed.stdout

    professional = sla.load_default_plans()["professional"]
    friday_1630 = datetime(2026, 11, 20, 16, 30, tzinfo=professional.timezone)
    assert friday_1630.weekday() == 4
    clock = FakeClock(friday_1630)
    broker = Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)
    rita = await broker.login("rita")

    # A sev-1 premium case is due one hour after it was opened.
    sev1 = await broker.call(
        "POST",
        "/api/v1/cases",
        status=201,
        headers=rita,
        json={
            "customer_name": "Ana Ruiz",
            "company": "Imprenta Sur",
            "contact": "+34 600 000 001",
            "product": "PressLine 9000",
            "serial_number": "PL9-0001",
            "description": "Press stopped, no production",
            "severity": 1,
            "plan": "premium",
        },
    )
    assert datetime.fromisoformat(sev1["response_due"]) == friday_1630 + timedelta(hours=1)
    assert sev1["number"].startswith("C-")

    # A sev-3 professional case at 16:30 on Friday: 9 business hours land at 09:30 Tuesday.
    sev3 = await broker.call(
        "POST",
        "/api/v1/cases",
        status=201,
        headers=rita,
        json={
            "number": "TCK-4711",
            "customer_name": "Luis Gil",
            "company": "Copias Norte",
            "contact": "luis@example.com",
            "product": "DocuJet 20",
            "serial_number": "DJ20-77",
            "plan": "professional",
        },
    )
    assert sev3["number"] == "TCK-4711" and sev3["severity"] == 3
    tuesday_0930 = datetime(2026, 11, 24, 9, 30, tzinfo=professional.timezone)
    assert datetime.fromisoformat(sev3["response_due"]) == tuesday_0930

    # Sessions: the sev-3 one first, so ordering by creation alone would be wrong.
    s3 = await broker.call("POST", "/api/v1/cases/TCK-4711/sessions", status=201, headers=rita)
    clock.advance(minutes=1)
    s1 = await broker.call(
        "POST", f"/api/v1/cases/{sev1['number']}/sessions", status=201, headers=rita
    )
    assert len(s1["code"]) == 10 and s1["code_display"].replace(" ", "") == s1["code"]
    assert s1["join_link"].endswith("/j#" + s1["code"])

    # Creating the session was the engineer's first response, within the hour.
    case1 = await broker.call("GET", f"/api/v1/cases/{sev1['number']}", status=200, headers=rita)
    assert case1["first_response_met"] is True and case1["status"] == "in_progress"

    # The customer joins once, with the code as read over the phone (grouped).
    joined = await broker.call(
        "POST", "/api/v1/join", status=200, json={"code": s1["code_display"]}
    )
    assert joined["case_number"] == sev1["number"]
    assert joined["engineer"] == {"display_name": "Rita Reyes", "level": "L2"}
    assert joined["customer_token"] and joined["agent_token"]
    again = await broker.call("POST", "/api/v1/join", status=410, json={"code": s1["code"]})
    assert again["error"] == "code_rejected"

    # The queue puts the sev-1 session first although it was created last.
    queue = await broker.call("GET", "/api/v1/sessions?state=waiting", status=200, headers=rita)
    assert [e["id"] for e in queue["sessions"]] == [s1["id"], s3["id"]]

    # The audit chain verifies; editing one row in the database file breaks it.
    ok = rsb("audit", "verify", "--db", str(db_path))
    assert ok.returncode == 0, ok.stderr
    assert "audit chain intact" in ok.stdout
    with sqlite3.connect(db_path) as conn:
        seq = conn.execute(
            "SELECT seq FROM audit_events WHERE action = 'session.customer_joined'"
        ).fetchone()[0]
        # The triggers refuse the edit; an attacker with the file drops them first.
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("UPDATE audit_events SET client_addr = '203.0.113.9' WHERE seq = ?", (seq,))
    bad = rsb("audit", "verify", "--db", str(db_path))
    assert bad.returncode == 1
    assert f"seq {seq}" in bad.stderr
