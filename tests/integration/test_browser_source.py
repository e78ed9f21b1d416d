"""A screen shared from the customer's browser, on the real broker: view only, same frame path.

The source here is scripted (``tests/relay_peers.py``) and says in its ``hello`` what the
customer page says (``source: "browser"``, web/js/share.js); the Chromium test
(``tests/e2e/test_browser_share.py``) runs the page itself. The broker names the source to the
engineers, relays its frames byte for byte as an agent's, and refuses control with a clear
message, before anyone asks the customer.
"""

from __future__ import annotations

from broker.types import Role
from rsb_protocol import messages as msg
from rsb_protocol.e2e import GroupSender
from rsb_protocol.framing import AGENT_SLOT, FrameType
from tests.conftest import Broker
from tests.relay_peers import ScriptedAgent, connect
from tests.relay_sessions import Live, admit_viewer, audit_events, join_viewer, live_session

BROWSER_HELLO = msg.Hello(
    msg.Role.AGENT,
    (msg.KeyAlgorithm.X25519,),
    "rsb-browser-share/0.1",
    source=msg.Source.BROWSER,
)


async def _browser_source(broker: Broker, live: Live) -> ScriptedAgent:
    """A source that introduces itself as the customer page does."""
    peer = await connect(broker.client, "/ws/agent", live.agent_token)
    source = ScriptedAgent(peer, live.session_id)
    source.sender = GroupSender(live.session_id, [source.keys])
    await peer.send(BROWSER_HELLO)
    await peer.send(source.keys.public.announce(AGENT_SLOT))
    await peer.wait(lambda: peer.of(msg.Welcome))
    return source


def _source_joins(joins: list[msg.Join]) -> list[msg.Source]:
    return [j.source for j in joins if j.slot == AGENT_SLOT]


async def test_engineers_learn_the_source_and_control_is_refused_without_asking(
    broker: Broker,
) -> None:
    live = await live_session(broker)
    early = await join_viewer(broker, live, live.staff)  # here before the page shares
    page = await connect(broker.client, "/ws/customer", live.customer_token)
    source = await _browser_source(broker, live)
    # Those present hear it once the page said what it is.
    await early.peer.wait(lambda: msg.Source.BROWSER in _source_joins(early.peer.of(msg.Join)))
    await page.wait(lambda: msg.Source.BROWSER in _source_joins(page.of(msg.Join)))
    await admit_viewer(broker, live, source, early)

    # A newcomer is greeted with it.
    bob = await broker.staff("bob", Role.RSE, "Bob Ortiz")
    late = await join_viewer(broker, live, bob)
    await late.peer.wait(lambda: late.peer.of(msg.Welcome))
    await late.peer.wait(lambda: _source_joins(late.peer.of(msg.Join)))
    assert _source_joins(late.peer.of(msg.Join)) == [msg.Source.BROWSER]

    await early.peer.send(msg.ControlRequest("req-c", early.slot, "open the settings"))
    errors = await early.peer.wait(lambda: early.peer.of(msg.ErrorMessage))
    assert errors[0].code == "view_only"
    assert "install the agent" in errors[0].message
    # Nobody asked the customer, and nothing was audited as requested.
    assert [r for r in source.peer.of(msg.ConsentRequest) if r.permission == "control"] == []
    actions = [e["action"] for e in await audit_events(broker, live.session_id)]
    assert "session.consent_requested" not in actions
    assert all(s.controller_slot is None for s in early.peer.of(msg.State))


async def test_the_broker_relays_a_browser_sources_frames_unchanged(broker: Broker) -> None:
    live = await live_session(broker)
    source = await _browser_source(broker, live)
    viewer = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, source, viewer)
    sealed = await source.screen(b"\x01\x00\x00\x10\x00\x10\x00\x00")
    await viewer.peer.wait(lambda: viewer.peer.frames(FrameType.KEYFRAME))
    assert viewer.peer.frames(FrameType.KEYFRAME) == [sealed]
    assert viewer.open_all() == [b"\x01\x00\x00\x10\x00\x10\x00\x00"]


async def test_an_installed_agent_replacing_the_page_can_be_asked_for_control(
    broker: Broker,
) -> None:
    live = await live_session(broker)
    await _browser_source(broker, live)
    viewer = await join_viewer(broker, live, live.staff)
    await viewer.peer.wait(lambda: msg.Source.BROWSER in _source_joins(viewer.peer.of(msg.Join)))
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    await viewer.peer.wait(lambda: _source_joins(viewer.peer.of(msg.Join))[-1] is msg.Source.AGENT)
    await admit_viewer(broker, live, agent, viewer)
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, "open the settings"))
    asked = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission == "control"]
    )
    assert asked[0].reason == "open the settings"
    assert [e.code for e in viewer.peer.of(msg.ErrorMessage)] == []
