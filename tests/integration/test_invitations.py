"""Invitations and hand-over, against the real broker over real WebSockets.

An invitation names one engineer or a level. It shows in the queue (``for_me`` tells the asking
engineer it names them or their level) until an invitee joins the session's relay, which accepts
it, audits that, and hands the session over: the customer's status check then names the engineer
who has it in hand, never one who left.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from broker.app import create_app
from broker.settings import Settings
from broker.store.records import iso
from broker.types import Role
from tests.conftest import Broker, BrokerTestServer, ClientFactory, FakeClock
from tests.integration.test_api_input import CASE
from tests.relay_peers import ScriptedAgent
from tests.relay_sessions import Live, audit_events, join_viewer, live_session, until


async def _invite(broker: Broker, live: Live, **target: str) -> dict[str, Any]:
    body = {"reason": f"needs {target}", **target}
    invited: dict[str, Any] = await broker.call(
        "POST",
        f"/api/v1/sessions/{live.session_id}/invite",
        status=201,
        headers=live.staff,
        json=body,
    )
    return invited


async def _queue_entry(broker: Broker, headers: dict[str, str], session_id: str) -> Any:
    queue = await broker.call("GET", "/api/v1/sessions", status=200, headers=headers)
    (entry,) = [s for s in queue["sessions"] if s["id"] == session_id]
    return entry


async def _status_engineers(broker: Broker, case_number: str) -> list[str | None]:
    status = await broker.call(
        "POST",
        "/api/v1/status",
        status=200,
        json={"case_number": case_number, "serial_number": CASE["serial_number"]},
    )
    return [s["engineer"] for s in status["sessions"]]


async def _case_number(broker: Broker, live: Live) -> str:
    session = await broker.services.sessions.get(live.session_id)
    return session.case_number


async def test_the_queue_shows_each_invitee_what_names_them(broker: Broker) -> None:
    live = await live_session(broker)  # rita, L2, opened it
    eve = await broker.staff("eve", Role.ENGINEERING, "Eve Engel")
    bob = await broker.staff("bob", Role.ENGINEERING, "Bob Bauer")
    dana = await broker.staff("dana", Role.DESK, "Dana Desk")
    by_name = await _invite(broker, live, user="eve")
    await _invite(broker, live, level="L3")
    assert (by_name["by"], by_name["user"], by_name["accepted_at"]) == ("rita", "eve", None)

    def shown(entry: Any) -> list[tuple[str | None, str | None, str, str, str | None]]:
        return [
            (i["user"], i["level"], i["reason"], i["by"], i["for_me"]) for i in entry["invitations"]
        ]

    assert shown(await _queue_entry(broker, eve, live.session_id)) == [
        ("eve", None, "needs {'user': 'eve'}", "rita", "user"),
        (None, "L3", "needs {'level': 'L3'}", "rita", "level"),
    ]
    assert shown(await _queue_entry(broker, bob, live.session_id)) == [
        ("eve", None, "needs {'user': 'eve'}", "rita", None),  # names someone else
        (None, "L3", "needs {'level': 'L3'}", "rita", "level"),
    ]
    for other in (dana, live.staff):  # L1, and the inviter (L2): neither is named
        assert [
            i["for_me"] for i in (await _queue_entry(broker, other, live.session_id))["invitations"]
        ] == [None, None]
    entry = await _queue_entry(broker, eve, live.session_id)
    assert entry["invitations"][0]["at"] == iso(broker.clock.now)
    assert entry["holder"] == {"user": "rita", "display_name": "Rita Reyes", "level": "L2"}


async def test_joining_accepts_what_names_you_audited_once(broker: Broker) -> None:
    live = await live_session(broker)
    eve_headers = await broker.staff("eve", Role.ENGINEERING, "Eve Engel")
    await broker.staff("dana", Role.DESK, "Dana Desk")
    await _invite(broker, live, user="eve")
    await _invite(broker, live, level="L3")
    await _invite(broker, live, level="L1")  # for dana: stays open when eve joins
    eve = await join_viewer(broker, live, eve_headers)

    async def accepted() -> list[dict[str, Any]]:
        events = await audit_events(broker, live.session_id)
        return [e for e in events if e["action"] == "session.invitation_accepted"]

    found = await until(accepted, "eve's invitations accepted")
    assert [
        (e["actor"], e["details"]["target_user"], e["details"]["target_level"]) for e in found
    ] == [
        ("eve", "eve", None),
        ("eve", None, "L3"),
    ]
    assert all(e["details"]["invited_by"] == "rita" for e in found)
    left_open = (await _queue_entry(broker, eve_headers, live.session_id))["invitations"]
    assert [(i["level"], i["for_me"]) for i in left_open] == [("L1", None)]
    detail = await broker.call(
        "GET", f"/api/v1/sessions/{live.session_id}", status=200, headers=eve_headers
    )
    assert [(i["accepted_by"], i["accepted_at"] is not None) for i in detail["invitations"]] == [
        ("eve", True),
        ("eve", True),
        (None, False),
    ]
    # Coming back later accepts nothing twice.
    await eve.peer.close()
    eve = await join_viewer(broker, live, eve_headers)
    await until(lambda: _joined(broker, live, "eve", 2), "eve joined again")
    assert len(await accepted()) == 2
    await eve.peer.close()


async def test_two_of_a_level_joining_at_once_accept_it_once(broker: Broker) -> None:
    live = await live_session(broker)
    headers = [await broker.staff(f"eng{i}", Role.ENGINEERING, f"Eng {i}") for i in range(2)]
    await _invite(broker, live, level="L3")
    viewers = await asyncio.gather(*(join_viewer(broker, live, h) for h in headers))

    async def accepted() -> list[dict[str, Any]]:
        events = await audit_events(broker, live.session_id)
        joined = [e for e in events if e["action"] == "session.participant_joined"]
        return events if len(joined) == 2 else []

    events = await until(accepted, "both joined")
    taken = [e for e in events if e["action"] == "session.invitation_accepted"]
    assert len(taken) == 1 and taken[0]["actor"] in ("eng0", "eng1")
    session = await broker.services.sessions.get(live.session_id)
    assert session.holder_user == taken[0]["actor"]  # the one it was handed to
    for viewer in viewers:
        await viewer.peer.close()


async def test_the_status_check_names_the_holder_after_a_hand_over(broker: Broker) -> None:
    live = await live_session(broker)
    case_number = await _case_number(broker, live)
    assert await _status_engineers(broker, case_number) == ["Rita Reyes"]  # its creator
    eve_headers = await broker.staff("eve", Role.ENGINEERING, "Eve Engel")
    bob_headers = await broker.staff("bob", Role.ENGINEERING, "Bob Bauer")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    # An engineer who joins uninvited does not take the session from the one who holds it.
    bob = await join_viewer(broker, live, bob_headers)

    async def named() -> list[str | None]:
        return await _status_engineers(broker, case_number)

    await until(lambda: _joined(broker, live, "bob", 1), "bob joined")
    assert await named() == ["Rita Reyes"]
    await _invite(broker, live, user="eve")
    eve = await join_viewer(broker, live, eve_headers)
    await until(lambda: _is(named(), ["Eve Engel"]), "handed over to eve")
    queue = await _queue_entry(broker, bob_headers, live.session_id)
    assert queue["holder"] == {"user": "eve", "display_name": "Eve Engel", "level": "L3"}

    # The holder leaves: the next engineer still connected holds it (rita), never eve.
    await eve.peer.close()
    await until(lambda: _is(named(), ["Rita Reyes"]), "back to rita after eve left")
    await rita.peer.close()
    await until(lambda: _is(named(), ["Bob Bauer"]), "bob after rita left")
    await bob.peer.close()
    await until(lambda: _is(named(), [None]), "nobody once everyone left")
    events = await audit_events(broker, live.session_id)
    assert [e["details"]["pid"] for e in events if e["action"] == "session.participant_left"] == [
        "eve",
        "rita",
        "bob",
    ]
    await agent.peer.close()


async def _joined(broker: Broker, live: Live, pid: str, times: int) -> bool:
    events = await audit_events(broker, live.session_id)
    joins = [e for e in events if e["action"] == "session.participant_joined"]
    return [e["details"]["pid"] for e in joins].count(pid) == times


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_a_database_from_before_hand_overs_opens_and_names_the_creator(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock, db_path: Path
) -> None:
    """Tables made by an older broker get the new columns; old sessions name their creator."""
    live_broker = Broker(
        await aiohttp_client(BrokerTestServer(create_app(settings, clock=clock))), clock
    )
    live = await live_session(live_broker)
    case_number = await _case_number(live_broker, live)
    await _invite(live_broker, live, level="L3")
    await live_broker.client.close()
    old = {
        "sessions": "id, case_number, created_by, engineer_display, engineer_level, created_at, "
        "code_hash, code_expires_at, code_used_at, state, ended_at, end_reason",
        "invitations": "id, session_id, at, by_user, target_user, target_level, reason",
    }
    with sqlite3.connect(db_path) as conn:  # back to the older tables, rows and all
        for table, columns in old.items():
            conn.execute(f"CREATE TABLE old_{table} AS SELECT {columns} FROM {table}")
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"ALTER TABLE old_{table} RENAME TO {table}")
        # Unnumbered, as every file was before numbered migrations: placed by its tables.
        conn.execute("PRAGMA user_version = 0")
    broker = Broker(
        await aiohttp_client(BrokerTestServer(create_app(settings, clock=clock))), clock
    )
    assert await _status_engineers(broker, case_number) == ["Rita Reyes"]
    eve_headers = await broker.staff("eve", Role.ENGINEERING, "Eve Engel")
    entry = await _queue_entry(broker, eve_headers, live.session_id)
    assert [(i["level"], i["for_me"], i["accepted_at"]) for i in entry["invitations"]] == [
        ("L3", "level", None)
    ]
    eve = await join_viewer(broker, live, eve_headers)
    await until(lambda: _is(_status_engineers(broker, case_number), ["Eve Engel"]), "eve holds it")
    await eve.peer.close()
