"""The reason an engineer gives for asking control, end to end through the real relay.

A viewer asks with a reason; the agent's ``consent_request`` carries it (cleaned: one printable
line, bounded), the audit row records it, and the customer's page is shown the open request with
its reason, then closed with the agent's answer. A request without a reason leaves the field off
the wire, so an agent whose strict parser predates it still gets every such request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rsb_protocol import messages as msg
from tests.conftest import Broker
from tests.relay_peers import (
    TIMEOUT,
    Peer,
    ScriptedAgent,
    ScriptedViewer,
    connect,
    subprotocols,
)
from tests.relay_sessions import Live, admit_viewer, audit_events, join_viewer, live_session

REASON = "to reinstall the printer driver"


async def _observing(broker: Broker) -> tuple[Live, ScriptedAgent, ScriptedViewer, Peer]:
    live = await live_session(broker)
    page = await connect(broker.client, "/ws/customer", live.customer_token)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, viewer)
    return live, agent, viewer, page


def _control(messages: list[Any]) -> list[Any]:
    return [m for m in messages if m.permission is msg.Permission.CONTROL]


def _control_requests(peer: Peer) -> list[msg.ConsentRequest]:
    return _control(peer.of(msg.ConsentRequest))


async def test_the_reason_reaches_the_agent_the_audit_and_the_page(broker: Broker) -> None:
    live, agent, viewer, page = await _observing(broker)
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, REASON))

    asked = await agent.peer.wait(lambda: _control_requests(agent.peer))
    assert [(r.slot, r.reason) for r in asked] == [(viewer.slot, REASON)]
    shown = await page.wait(lambda: _control_requests(page))
    assert shown == asked  # the page sees the very request the agent was asked

    events = await audit_events(broker, live.session_id)
    requested = [e for e in events if e["action"] == "session.consent_requested"]
    assert [(e["actor"], e["details"]) for e in requested] == [
        ("rita", {"pid": "rita", "permission": "control", "reason": REASON})
    ]

    # The agent's yes closes the request on the page with that answer.
    await agent.grant(asked[0])
    granted = await page.wait(lambda: _control(page.of(msg.ConsentGrant)))
    assert [(g.request_id, g.slot) for g in granted] == [(asked[0].request_id, viewer.slot)]
    for peer in (page, agent.peer, viewer.peer):
        await peer.close()


async def test_a_refusal_closes_the_request_on_the_page(broker: Broker) -> None:
    _, agent, viewer, page = await _observing(broker)
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, REASON))
    asked = await agent.peer.wait(lambda: _control_requests(agent.peer))
    await agent.peer.send(msg.ConsentRefuse(asked[0].request_id, viewer.slot, asked[0].permission))
    refused = await page.wait(lambda: _control(page.of(msg.ConsentRefuse)))
    assert [(r.request_id, r.slot) for r in refused] == [(asked[0].request_id, viewer.slot)]
    assert not _control(page.of(msg.ConsentGrant))
    for peer in (page, agent.peer, viewer.peer):
        await peer.close()


async def test_a_page_that_connects_later_is_shown_the_open_request(broker: Broker) -> None:
    live, agent, viewer, first = await _observing(broker)
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, REASON))
    asked = await agent.peer.wait(lambda: _control_requests(agent.peer))
    await first.close()
    again = await connect(broker.client, "/ws/customer", live.customer_token)
    shown = await again.wait(lambda: _control_requests(again))
    assert shown == asked
    for peer in (again, agent.peer, viewer.peer):
        await peer.close()


async def test_control_characters_are_stripped_and_the_length_is_bounded(broker: Broker) -> None:
    live, agent, viewer, page = await _observing(broker)
    # Line breaks, a terminal escape, a right-to-left override and a zero-width space: none
    # may reach the customer's prompt, where they could make the request read as another.
    typed = "  need\ncontrol\x1b[2J to\u202e fix\u200b it  " + "x" * 400
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, typed))
    asked = await agent.peer.wait(lambda: _control_requests(agent.peer))
    reason = asked[0].reason
    assert reason.startswith("need control[2J to fix it xxx")
    assert len(reason) == msg.CONSENT_REASON_MAX and reason.isprintable()
    shown = await page.wait(lambda: _control_requests(page))
    assert shown[0].reason == reason
    events = await audit_events(broker, live.session_id)
    (requested,) = [e for e in events if e["action"] == "session.consent_requested"]
    assert requested["details"]["reason"] == reason
    for peer in (page, agent.peer, viewer.peer):
        await peer.close()


async def test_the_reason_is_the_only_new_field_and_only_when_given(broker: Broker) -> None:
    """An agent from before ``reason`` refuses unknown fields: a request without one omits it."""
    live = await live_session(broker)
    ws = await broker.client.ws_connect("/ws/agent", protocols=subprotocols(live.agent_token))
    await ws.send_str(msg.Hello(msg.Role.AGENT, (msg.KeyAlgorithm.X25519,), "old-agent").to_json())
    viewer = await join_viewer(broker, live, live.staff)

    async def next_request() -> dict[str, Any]:
        async for message in ws:
            data: dict[str, Any] = json.loads(message.data)
            if data["type"] == "consent_request":
                return data
        raise AssertionError("the agent's socket closed without a consent_request")

    old_fields = {
        *("v", "type", "request_id", "slot", "permission", "engineer_name", "engineer_level"),
        *("case_number", "organisation", "recorded"),
    }
    view = await asyncio.wait_for(next_request(), TIMEOUT)
    assert view["permission"] == "view" and set(view) == old_fields
    grant = msg.ConsentGrant(view["request_id"], view["slot"], msg.Permission.VIEW)
    await ws.send_str(grant.to_json())
    await viewer.peer.wait(
        lambda: [s for s in viewer.peer.of(msg.State) if viewer.slot in s.viewing_slots]
    )
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, REASON))
    control = await asyncio.wait_for(next_request(), TIMEOUT)
    assert set(control) == old_fields | {"reason"} and control["reason"] == REASON
    await viewer.peer.close()
    await ws.close()
