"""Live-session bugs found by the browser tests, on the real broker with scripted peers:
ACKs across key epochs and agent restarts, the broker's own close keeping an engineer's
grants, and the agent's arrival and departure announced to those already present."""

from __future__ import annotations

from broker.relay.handlers import HUB_KEY
from broker.types import Role
from rsb_protocol import messages as msg
from rsb_protocol.framing import AGENT_SLOT, FrameType, peek_position
from tests.conftest import Broker
from tests.relay_peers import ScriptedAgent, ScriptedViewer
from tests.relay_sessions import admit_viewer, audit_events, join_viewer, live_session, until

WINDOW = 3
"""The agent's default credit window (agent_client.session.AgentOptions.window)."""


def _acks(agent: ScriptedAgent) -> list[tuple[int, int]]:
    return [peek_position(frame) for frame in agent.peer.frames(FrameType.ACK)]


async def _stream(agent: ScriptedAgent, viewer: ScriptedViewer, count: int) -> int:
    """Send `count` updates in the agent's current epoch, each acknowledged by `viewer` as it
    arrives, and wait for every ACK to reach the agent; returns the epoch."""
    assert agent.sender is not None
    epoch = agent.sender.epoch
    for _ in range(count):
        sealed = await agent.screen(b"update", FrameType.SCREEN_UPDATE)
        position = peek_position(sealed)
        await viewer.peer.wait(lambda sealed=sealed: sealed in viewer.peer.binaries)
        await viewer.ack(position[1], position[0])
        await agent.peer.wait(lambda position=position: position in _acks(agent))
    return epoch


async def test_acks_reach_the_agent_after_a_new_epoch(broker: Broker) -> None:
    live = await live_session(broker)
    second = await broker.staff("evan", Role.ENGINEERING, "Evan Eng")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    evan = await join_viewer(broker, live, second)
    await admit_viewer(broker, live, agent, rita)
    await admit_viewer(broker, live, agent, evan)
    first = await _stream(agent, rita, 2 * WINDOW)
    # Evan leaves: a new epoch for Rita alone, whose sequence starts again at 1.
    await evan.peer.close()
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == evan.slot])
    await agent.admit([rita.slot])
    second_epoch = await _stream(agent, rita, 2 * WINDOW)
    assert second_epoch != first
    assert [seq for epoch, seq in _acks(agent) if epoch == second_epoch] == list(
        range(1, 2 * WINDOW + 1)
    )
    await agent.peer.close()
    await rita.peer.close()


async def test_acks_reach_a_restarted_agent(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, rita)
    epoch = await _stream(agent, rita, 2 * WINDOW)
    await agent.peer.ws.close(code=1006)  # the process died
    # A new process: new keys, and its epochs and sequence start from the beginning again.
    again = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    await again.peer.wait(lambda: again.viewer_key(rita.slot))
    await again.admit([rita.slot])
    assert again.sender is not None and again.sender.epoch == epoch
    await _stream(again, rita, 2 * WINDOW)
    assert [seq for _, seq in _acks(again)] == list(range(1, 2 * WINDOW + 1))
    await again.peer.close()
    await rita.peer.close()


async def test_the_brokers_own_close_keeps_the_engineers_grants(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, rita)
    room = broker.client.app[HUB_KEY].rooms[live.session_id]
    # The relay closes the viewer itself (as on shutdown); the client answers the close
    # handshake with 1000, which is not the engineer leaving.
    room.viewers[rita.slot].close_soon(1001, "broker shutting down")
    assert await rita.peer.closed() == 1001
    leave = await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == 1])
    assert leave == [msg.Leave(rita.slot, "rita", "disconnected")]
    again = await join_viewer(broker, live, live.staff)
    assert again.slot == rita.slot
    state = await again.peer.wait(lambda: again.peer.of(msg.State))
    assert rita.slot in state[-1].viewing_slots, "the grant survived: no new prompt"
    assert len([r for r in agent.peer.of(msg.ConsentRequest) if r.slot == rita.slot]) == 1
    actions = [e["action"] for e in await audit_events(broker, live.session_id)]
    assert "session.participant_resumed" in actions
    assert "session.participant_left" not in actions
    # The console's own close with 1000 is leaving: the grant goes.
    await again.peer.close()
    leave = await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == 1][1:])
    assert leave == [msg.Leave(rita.slot, "rita", "left")]
    await agent.peer.close()


async def test_viewers_present_learn_of_the_agent_coming_and_going(broker: Broker) -> None:
    live = await live_session(broker)
    rita = await join_viewer(broker, live, live.staff)
    assert not [j for j in rita.peer.of(msg.Join) if j.slot == AGENT_SLOT]
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    joins = await rita.peer.wait(lambda: [j for j in rita.peer.of(msg.Join) if j.slot == 0])
    assert joins == [msg.Join(AGENT_SLOT, "agent", "Customer's computer", msg.Role.AGENT)]
    await rita.peer.wait(rita.agent_key)
    await agent.peer.ws.close(code=1006)
    leaves = await rita.peer.wait(lambda: [m for m in rita.peer.of(msg.Leave) if m.slot == 0])
    assert leaves == [msg.Leave(AGENT_SLOT, "agent", "disconnected")]
    await rita.peer.close()


def _requests(agent: ScriptedAgent, slot: int) -> list[str]:
    return [r.request_id for r in agent.peer.of(msg.ConsentRequest) if r.slot == slot]


async def test_an_agent_arriving_after_the_viewer_is_asked_once(broker: Broker) -> None:
    live = await live_session(broker)
    rita = await join_viewer(broker, live, live.staff)  # the console opened the session first
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    requests = await agent.peer.wait(lambda: agent.peer.of(msg.ConsentRequest))
    # The customer answers the first request at once, as the real agent's prompt allows.
    await agent.grant(requests[0])
    await agent.peer.wait(lambda: [s for s in agent.peer.of(msg.State) if s.viewing_slots])
    # A second request under another id would tell the agent its yes no longer counts: the
    # real agent then drops the grant and asks again (tests/e2e/test_story.py, p256).
    assert _requests(agent, rita.slot) == [requests[0].request_id]
    assert not agent.peer.of(msg.ErrorMessage)
    await agent.peer.close()
    await rita.peer.close()


async def test_an_agent_that_comes_back_is_asked_under_the_same_id(broker: Broker) -> None:
    live = await live_session(broker)
    rita = await join_viewer(broker, live, live.staff)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    first = await agent.peer.wait(lambda: _requests(agent, rita.slot))
    await agent.peer.ws.close(code=1006)  # dropped with the prompt still open
    again = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    # The same question: an answer already given to it (and lost) is simply repeated.
    assert await again.peer.wait(lambda: _requests(again, rita.slot)) == first
    # A newer connection pushing that one out is sent what is still open too.
    third = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    assert await again.peer.closed() == 4104
    assert await third.peer.wait(lambda: _requests(third, rita.slot)) == first
    await third.grant(third.peer.of(msg.ConsentRequest)[0])
    await third.peer.wait(lambda: [s for s in third.peer.of(msg.State) if s.viewing_slots])
    assert _requests(third, rita.slot) == first
    await third.peer.close()
    await rita.peer.close()


async def test_an_agent_back_while_its_old_connection_is_still_leaving(broker: Broker) -> None:
    """The old connection's departure is applied after the new one arrived (it waited for the
    room's lock): the session must still count the agent as connected, and not end it as lost
    when the resume window runs out."""
    live = await live_session(broker)
    rita = await join_viewer(broker, live, live.staff)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    await agent.peer.wait(lambda: _requests(agent, rita.slot))
    hub = broker.client.app[HUB_KEY]
    room = hub.rooms[live.session_id]
    async with room.lock:  # as if an audit write elsewhere in the room were slow
        await agent.peer.ws.close(code=1006)
        # The old connection's cleanup has let go of the agent and waits for the lock.
        await rita.peer.wait(lambda: [m for m in rita.peer.of(msg.Leave) if m.slot == 0])
        again = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
        await again.peer.wait(lambda: _requests(again, rita.slot))

    # The departure goes through once the lock is free; the newer connection still counts.
    async def departed() -> bool:
        events = await audit_events(broker, live.session_id)
        return "session.agent_disconnected" in [e["action"] for e in events]

    await until(departed, "the old connection's departure is applied")
    assert room.agent is not None and room.state.agent_connected
    broker.clock.advance(seconds=3600)  # far past the resume window
    await hub.tick()
    assert not room.ended
    actions = [e["action"] for e in await audit_events(broker, live.session_id)]
    assert actions.count("session.agent_disconnected") == 1
    assert actions[-1] == "session.agent_resumed", actions
    assert "session.ended" not in actions
    # The session works on: the customer's yes reaches the engineer over the new connection.
    await again.grant(again.peer.of(msg.ConsentRequest)[-1])
    await rita.peer.wait(lambda: [s for s in rita.peer.of(msg.State) if s.viewing_slots])
    await again.peer.close()
    await rita.peer.close()
