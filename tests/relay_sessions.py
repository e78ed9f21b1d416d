"""A live session on the real broker for relay tests: case, session, join, viewers, consent.

Shared by the relay, relay-limits, relay-live, relay-keys and customer-chat tests; the peers
themselves are in ``tests/relay_peers.py``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.types import Role
from rsb_protocol import messages as msg
from tests.conftest import Broker
from tests.integration.test_api_input import CASE
from tests.relay_peers import ScriptedAgent, ScriptedViewer


@dataclass
class Live:
    session_id: str
    agent_token: str
    customer_token: str
    staff: dict[str, str]


async def live_session(broker: Broker, user: str = "rita", role: Role = Role.RSE) -> Live:
    staff = await broker.staff(user, role, "Rita Reyes")
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=staff, json=CASE)
    session = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=staff
    )
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    return Live(session["id"], joined["agent_token"], joined["customer_token"], staff)


async def until(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``predicate`` (plain or async) until it is truthy, within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last: {value!r})")
        await asyncio.sleep(0.02)


async def audit_events(broker: Broker, session_id: str) -> list[dict[str, Any]]:
    """The session's audit events as the security role reads them through the API."""
    if await broker.services.store.get_user("sam") is None:
        await broker.add_user("sam", Role.SECURITY)
    events = await broker.call(
        "GET",
        f"/api/v1/audit?session={session_id}",
        status=200,
        headers=await broker.login("sam"),
    )
    found: list[dict[str, Any]] = events["events"]
    return found


def bearer_token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def join_viewer(broker: Broker, live: Live, headers: dict[str, str]) -> ScriptedViewer:
    return await ScriptedViewer.join(broker.client, bearer_token(headers), live.session_id)


async def admit_viewer(
    broker: Broker, live: Live, agent: ScriptedAgent, viewer: ScriptedViewer
) -> None:
    """The customer says yes to viewing, and the agent hands the viewer the epoch key."""
    request = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.slot == viewer.slot]
    )
    await agent.peer.wait(lambda: agent.viewer_key(viewer.slot))
    await agent.grant(request[-1])
    states = await agent.peer.wait(
        lambda: [s for s in agent.peer.of(msg.State) if viewer.slot in s.viewing_slots]
    )
    await agent.admit(list(states[-1].viewing_slots))  # new epoch for everyone admitted


async def admitted_session(broker: Broker) -> tuple[Live, ScriptedAgent, ScriptedViewer]:
    """A live session with its agent connected and rita's viewer admitted by the customer."""
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, viewer)
    return live, agent, viewer


async def give_control(
    agent: ScriptedAgent, viewer: ScriptedViewer, reason: str = "fix it"
) -> None:
    """The viewer asks for control and the customer says yes (through the agent)."""
    await viewer.peer.send(msg.ControlRequest("req-control", viewer.slot, reason))
    ask = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission == "control"]
    )
    await agent.grant(ask[-1])
    await viewer.peer.wait(
        lambda: [s for s in viewer.peer.of(msg.State) if s.controller_slot == viewer.slot]
    )
