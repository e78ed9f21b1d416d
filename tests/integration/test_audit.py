"""The audit log: every action appends, search filters, export, and tamper detection."""

from __future__ import annotations

import json
import sqlite3
from itertools import pairwise
from pathlib import Path

import pytest

from broker.types import Role
from tests.conftest import PASSWORD, Broker, rsb
from tests.integration.test_api_input import CASE


async def _activity(broker: Broker) -> dict[str, str]:
    rita = await broker.staff("rita", Role.RSE)
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=rita, json=CASE)
    session = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=rita
    )
    await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    return {"case": case["number"], "session": session["id"]}


async def test_search_filters_and_chain_fields(broker: Broker) -> None:
    ids = await _activity(broker)
    sec = await broker.staff("sam", Role.SECURITY)
    everything = (await broker.call("GET", "/api/v1/audit", status=200, headers=sec))["events"]
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert all(a["hash"] == b["prev_hash"] for a, b in pairwise(everything))
    by_case = (
        await broker.call("GET", f"/api/v1/audit?case={ids['case']}", status=200, headers=sec)
    )["events"]
    assert {e["action"] for e in by_case} >= {
        "case.created",
        "session.created",
        "session.customer_joined",
        "case.first_response",
    }
    assert all(e["case"] == ids["case"] for e in by_case)
    joined = [e for e in by_case if e["action"] == "session.customer_joined"][0]
    assert joined["actor"] == f"customer:{ids['session']}"
    assert joined["client_addr"] == "127.0.0.1"
    by_actor = (await broker.call("GET", "/api/v1/audit?actor=rita", status=200, headers=sec))[
        "events"
    ]
    assert by_actor and all(e["actor"] == "rita" for e in by_actor)
    since = everything[-1]["at"].replace("+", "%2B")
    recent = (await broker.call("GET", f"/api/v1/audit?since={since}", status=200, headers=sec))[
        "events"
    ]
    assert recent and all(e["at"] >= everything[-1]["at"] for e in recent)
    verify = await broker.call("GET", "/api/v1/audit/verify", status=200, headers=sec)
    # Three more searches since the first listing (which saw its own event), each audited.
    assert verify["ok"] is True and verify["checked"] == len(everything) + 3
    mine = (await broker.call("GET", "/api/v1/audit?actor=sam", status=200, headers=sec))["events"]
    searched = [e["details"] for e in mine if e["action"] == "audit.searched"]
    assert {"case": ids["case"]} in searched and {"actor": "rita"} in searched


async def test_export_is_json_lines_and_is_itself_audited(broker: Broker) -> None:
    await _activity(broker)
    sec = await broker.staff("sam", Role.SECURITY)
    resp = await broker.client.get("/api/v1/audit/export", headers=sec)
    assert resp.status == 200
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert lines[-1]["action"] == "audit.exported" and lines[-1]["actor"] == "sam"


def _tamper(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for statement in statements:
            conn.execute(statement)


async def test_triggers_refuse_edits(broker: Broker, db_path: Path) -> None:
    await _activity(broker)
    with sqlite3.connect(db_path) as conn:
        for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)


@pytest.mark.parametrize(
    ("statements", "bad_seq"),
    [
        (("UPDATE audit_events SET details = '{\"x\":1}' WHERE seq = 3",), 3),
        (("DELETE FROM audit_events WHERE seq = 2",), 3),
        # Reorder: swap the content of events 2 and 3.
        (
            (
                "UPDATE audit_events SET seq = -2 WHERE seq = 2",
                "UPDATE audit_events SET seq = 2 WHERE seq = 3",
                "UPDATE audit_events SET seq = 3 WHERE seq = -2",
            ),
            2,
        ),
        # Truncate: drop the newest event; only the recorded head notices.
        (("DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)",), None),
    ],
)
async def test_verify_names_the_first_bad_event(
    broker: Broker, db_path: Path, statements: tuple[str, ...], bad_seq: int | None
) -> None:
    await _activity(broker)
    assert rsb("audit", "verify", "--db", str(db_path)).returncode == 0
    last = (await broker.services.store.audit_head() or (0, ""))[0]
    _tamper(db_path, *statements)
    done = rsb("audit", "verify", "--db", str(db_path))
    assert done.returncode == 1
    assert f"seq {bad_seq if bad_seq is not None else last}" in done.stderr


async def test_cli_export_and_user_commands(db_path: Path, tmp_path: Path) -> None:
    assert (
        rsb(
            "users",
            "add",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
            "--db",
            str(db_path),
            stdin=PASSWORD + "\n",
        ).returncode
        == 0
    )
    dup = rsb(
        "users",
        "add",
        "ada",
        "--role",
        "admin",
        "--password-stdin",
        "--db",
        str(db_path),
        stdin=PASSWORD + "\n",
    )
    assert dup.returncode == 2 and "already exists" in dup.stderr
    short = rsb(
        "users",
        "add",
        "bob",
        "--role",
        "rse",
        "--password-stdin",
        "--db",
        str(db_path),
        stdin="short\n",
    )
    assert short.returncode == 2
    assert rsb("users", "disable", "ada", "--db", str(db_path)).returncode == 0
    assert "ada\tadmin\tdisabled" in rsb("users", "list", "--db", str(db_path)).stdout
    out = tmp_path / "audit.jsonl"
    assert rsb("audit", "export", "-o", str(out), "--db", str(db_path)).returncode == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    # The CLI export is recorded like the HTTP one, before the events are written.
    assert [e["action"] for e in events] == [
        "keys.rotated",
        "user.created",
        "user.disabled",
        "audit.exported",
    ]
    assert events[-1]["actor"].startswith("cli:") and events[-1]["client_addr"] == "local"
    again = tmp_path / "again.jsonl"
    assert rsb("audit", "export", "-o", str(again), "--db", str(db_path)).returncode == 0
    assert [json.loads(line)["action"] for line in again.read_text().splitlines()][-2:] == [
        "audit.exported",
        "audit.exported",
    ]
    assert rsb("keys", "rotate", "--db", str(db_path)).returncode == 0
