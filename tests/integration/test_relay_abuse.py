"""Issue 11's relay holes, attacked the way the outside tour did, on the real broker.

- A viewer's frames must never cost another party its connection: 300 ACKs from any engineer
  closed the *agent* with 4201, 9 times out of 9, even from a viewer the customer refused.
- A viewer the customer refused gets nothing through (ACKs, keyframe requests, chat, input).
- Chat is audited from the frame the relay forwards, not from the client's ``chat`` message.
- The customer page's pause and resume reach the agent only once the session rules took them.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import pytest

from broker.errors import CloseCode
from broker.relay.handlers import HUB_KEY
from broker.relay.hub import Hub
from broker.relay.limits import CHAT_RATE, CONTROL_REQUEST_RATE, MAX_KEY_ANNOUNCEMENTS
from broker.relay.peer import WRITE_BUFFER_LOW
from broker.types import Role
from rsb_protocol import messages as msg
from rsb_protocol.e2e import KeyPair
from rsb_protocol.framing import NO_FLAGS, FrameType, pack_header, peek_position, peek_route
from tests.conftest import Broker
from tests.relay_peers import ScriptedAgent, ScriptedViewer, connect
from tests.relay_sessions import (
    Live,
    admit_viewer,
    admitted_session,
    audit_events,
    give_control,
    join_viewer,
    live_session,
    until,
)

CONTROL_LIMIT = 48
"""Undelivered control messages a peer may have queued (default 256): a flood of 300 overflows
it sooner, and a newcomer's greeting among a dozen viewers (about 30) still fits."""
FLOOD = 300
SMALL_TCP_BUFFER = 16 * 1024


def _hub(broker: Broker) -> Hub:
    return broker.client.app[HUB_KEY]


def _ack(slot: int, epoch: int, seq: int) -> bytes:
    return pack_header(FrameType.ACK, slot, epoch, seq, NO_FLAGS)


async def _agent_is_intact(broker: Broker, live: Live, agent: ScriptedAgent) -> None:
    """The broker still holds this agent's connection open, and it still carries messages."""
    room = _hub(broker).room(live.session_id)
    assert room is not None and room.agent is not None
    assert not room.agent.closed, "the broker is closing the agent's connection"
    probe = await join_viewer(broker, live, await broker.staff("pat", Role.DESK, "Pat Probe"))
    await agent.peer.wait(lambda: [j for j in agent.peer.of(msg.Join) if j.slot == probe.slot])
    assert not agent.peer.ws.closed and agent.peer.ws.close_code is None
    await probe.peer.close()


async def _refuse(agent: ScriptedAgent, viewer: ScriptedViewer) -> None:
    request = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.slot == viewer.slot]
    )
    await agent.peer.send(
        msg.ConsentRefuse(request[-1].request_id, viewer.slot, request[-1].permission)
    )
    await viewer.peer.wait(lambda: viewer.peer.of(msg.ErrorMessage))


async def test_ack_floods_from_any_viewer_never_close_the_agent(broker: Broker) -> None:
    """The tour's attack, nine times over: hello, then 300 ACKs at once, from a desk viewer
    who was refused, from one never answered, and from an admitted one (whose ACKs beyond
    what it was sent are made up), several at the same time."""
    _hub(broker).limits = replace(_hub(broker).limits, max_queued_control=CONTROL_LIMIT)
    live, agent, admitted = await admitted_session(broker)
    sealed = await agent.screen(b"the one update sent")
    epoch, sent_seq = peek_position(sealed)
    await admitted.peer.wait(lambda: sealed in admitted.peer.binaries)
    attackers = []
    for number in range(9):
        headers = await broker.staff(f"desk{number}", Role.DESK, f"Desk {number}")
        attacker = await join_viewer(broker, live, headers)
        if number % 3 == 0:
            await _refuse(agent, attacker)
        attackers.append(attacker)

    async def flood(viewer: ScriptedViewer) -> None:
        for seq in range(1, FLOOD + 1):
            await viewer.peer.ws.send_bytes(_ack(viewer.slot, epoch, seq))
            await viewer.peer.ws.send_bytes(
                pack_header(FrameType.KEYFRAME_REQUEST, viewer.slot, 0, 0, NO_FLAGS)
            )

    await asyncio.gather(*(flood(v) for v in [*attackers, admitted]))
    await admitted.ack(sent_seq, epoch)  # one honest ACK, after the flood on its socket
    await agent.peer.wait(
        lambda: [a for a in agent.peer.frames(FrameType.ACK) if peek_position(a)[1] == sent_seq]
    )
    await _agent_is_intact(broker, live, agent)
    # Only the admitted viewer's ACKs got through, none beyond the update it was sent; the
    # keyframe requests were latest-wins and only an admitted viewer's counted.
    acks = agent.peer.frames(FrameType.ACK)
    assert {peek_route(a)[1] for a in acks} == {admitted.slot}
    assert all(peek_position(a) == (epoch, 1) for a in acks), [peek_position(a) for a in acks]
    requests = agent.peer.frames(FrameType.KEYFRAME_REQUEST)
    assert {peek_route(r)[1] for r in requests} <= {admitted.slot}
    assert len(requests) <= FLOOD
    for viewer in [*attackers, admitted]:
        assert not viewer.peer.ws.closed, "each stayed inside its own rate limit"
        await viewer.peer.close()
    await agent.peer.close()


async def test_a_controllers_input_flood_is_dropped_at_the_agents_bound_not_fatal(
    broker: Broker,
) -> None:
    _hub(broker).limits = replace(_hub(broker).limits, max_queued_control=CONTROL_LIMIT)
    live, agent, rita = await admitted_session(broker)
    await give_control(agent, rita, "fix the printer")
    epoch = agent.sender.epoch if agent.sender else 1
    room = _hub(broker).room(live.session_id)
    assert room is not None and room.agent is not None
    stalled = room.agent
    # The agent stops reading on a small TCP window, and the controller's long chat lines fill
    # what the sockets buffer: from then on everything for the agent waits in its queue.
    assert stalled._transport is not None
    for sock, option in (
        (agent.peer.ws.get_extra_info("socket"), socket.SO_RCVBUF),
        (stalled._transport.get_extra_info("socket"), socket.SO_SNDBUF),
    ):
        sock.setsockopt(socket.SOL_SOCKET, option, SMALL_TCP_BUFFER)
    assert agent.peer._task is not None
    agent.peer._task.cancel()
    for seq in range(1, 4):
        chat = pack_header(FrameType.CHAT, rita.slot, epoch, seq, NO_FLAGS) + b"c" * 200_000
        await rita.peer.ws.send_bytes(chat)
    transport = stalled._transport
    await until(lambda: transport.get_write_buffer_size() > WRITE_BUFFER_LOW, "buffers fill up")
    inputs = [rita.pairwise_input(b'{"type":"text","text":"x"}', epoch) for _ in range(FLOOD * 2)]
    for frame in inputs:
        await rita.peer.ws.send_bytes(frame)
    await until(lambda: stalled.dropped >= FLOOD, "input beyond the bound is dropped")
    assert not stalled.closed, "the controller's input closed the agent"
    assert stalled._control <= CONTROL_LIMIT
    # The broker keeps this agent: same connection, not closing, the bound held.
    assert room.agent is stalled and not stalled.closed
    assert not rita.peer.ws.closed
    await rita.peer.close()
    agent.peer._task = None  # cancelled above: nothing to wait for
    await agent.peer.close()


async def test_a_refused_viewer_gets_nothing_through(broker: Broker) -> None:
    live, agent, rita = await admitted_session(broker)
    sealed = await agent.screen(b"for rita only")
    epoch, seq = peek_position(sealed)
    dana = await join_viewer(broker, live, await broker.staff("dana", Role.DESK, "Dana Desk"))
    await _refuse(agent, dana)
    before = {t: len(agent.peer.frames(t)) for t in FrameType}
    agent_key = dana.agent_key()
    assert agent_key is not None
    for frame in (
        _ack(dana.slot, epoch, seq),
        pack_header(FrameType.KEYFRAME_REQUEST, dana.slot, 0, 0, NO_FLAGS),
        pack_header(FrameType.CHAT, dana.slot, epoch, 1, NO_FLAGS) + b"\x00" * 32,
    ):
        await dana.peer.ws.send_bytes(frame)
    await dana.send_input(b'{"type":"text","text":"evil"}', epoch)
    await dana.peer.send(msg.ChatMeta(dana.slot, epoch, 1, 48))  # a made-up chat row
    await rita.ack(seq, epoch)  # on another socket; once it arrived, give dana's a round trip
    await agent.peer.wait(lambda: len(agent.peer.frames(FrameType.ACK)) > before[FrameType.ACK])
    await dana.peer.send(msg.Hello(msg.Role.VIEWER, (msg.KeyAlgorithm.X25519,), "sync"))
    await _agent_is_intact(broker, live, agent)
    acks = agent.peer.frames(FrameType.ACK)
    assert [peek_route(a)[1] for a in acks[before[FrameType.ACK] :]] == [rita.slot]
    for kind in (FrameType.KEYFRAME_REQUEST, FrameType.CHAT, FrameType.INPUT):
        assert len(agent.peer.frames(kind)) == before[kind], kind
    assert "session.chat" not in [e["action"] for e in await audit_events(broker, live.session_id)]
    await dana.peer.close()
    await rita.peer.close()
    await agent.peer.close()


async def test_chat_is_audited_from_the_forwarded_frame_not_the_clients_message(
    broker: Broker,
) -> None:
    live, agent, rita = await admitted_session(broker)
    epoch = agent.sender.epoch if agent.sender else 1
    # A forged "chat" message with no frame: nothing to audit.
    await rita.peer.send(msg.ChatMeta(rita.slot, epoch, 99, 1234))
    # A chat frame sent without its "chat" message: audited all the same, from its header.
    line = pack_header(FrameType.CHAT, rita.slot, epoch, 7, NO_FLAGS) + b"\x01" * 40
    await rita.peer.ws.send_bytes(line)
    await agent.peer.wait(lambda: agent.peer.frames(FrameType.CHAT))
    chats = [
        e for e in await audit_events(broker, live.session_id) if e["action"] == "session.chat"
    ]
    assert [(e["details"]["slot"], e["details"]["seq"], e["details"]["size"]) for e in chats] == [
        (rita.slot, 7, len(line))
    ]
    assert chats[0]["details"]["epoch"] == epoch
    assert chats[0]["actor"] == "rita"
    await rita.peer.close()
    await agent.peer.close()


async def test_a_viewers_repeated_key_announcements_are_not_relayed(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    await agent.peer.wait(lambda: agent.viewer_key(rita.slot))
    for _ in range(50):
        await rita.peer.send(rita.keys.public.announce(rita.slot))
    await _agent_is_intact(broker, live, agent)
    assert len([k for k in agent.peer.of(msg.PublicKeyAnnounce) if k.slot == rita.slot]) == 1
    await rita.peer.close()
    await agent.peer.close()


async def test_customer_pause_and_resume_reach_the_agent_only_once_accepted(
    broker: Broker,
) -> None:
    live, agent, viewer = await admitted_session(broker)
    page = await connect(broker.client, "/ws/customer", live.customer_token)
    await page.wait(lambda: page.of(msg.Welcome))
    # Resuming what is not paused: refused, and the agent never hears of it.
    await page.send(msg.Resume(msg.Role.CUSTOMER))
    refused = await page.wait(lambda: page.of(msg.ErrorMessage))
    assert refused[0].code == "invalid_transition"
    await page.send(msg.Pause(msg.Role.CUSTOMER, "a moment"))
    await agent.peer.wait(lambda: agent.peer.of(msg.Pause))
    assert not agent.peer.of(msg.Resume), "the agent saw a resume the broker refused"
    # The pause came after the state that took it, so the agent's view and the broker's agree.
    kinds = [type(t) for t in agent.peer.texts]
    paused_state = next(
        i
        for i, t in enumerate(agent.peer.texts)
        if isinstance(t, msg.State) and t.phase == "paused"
    )
    assert paused_state < kinds.index(msg.Pause)
    await page.send(msg.Pause(msg.Role.CUSTOMER, "twice"))  # refused: already paused
    await page.wait(lambda: len(page.of(msg.ErrorMessage)) >= 2)
    await page.send(msg.Resume(msg.Role.CUSTOMER))
    await agent.peer.wait(lambda: agent.peer.of(msg.Resume))
    assert len(agent.peer.of(msg.Pause)) == 1 and len(agent.peer.of(msg.Resume)) == 1
    for peer in (page, viewer.peer, agent.peer):
        await peer.close()


@pytest.mark.parametrize(
    "kind", [FrameType.SCREEN_UPDATE, FrameType.KEYFRAME, FrameType.CURSOR, FrameType.KEY_WRAP]
)
async def test_a_viewer_sending_what_only_the_agent_sends_is_closed_and_relays_nothing(
    broker: Broker, kind: FrameType
) -> None:
    """Routing refuses these outright (4400); none reaches the agent or the other viewer."""
    live, agent, rita = await admitted_session(broker)
    evan = await join_viewer(broker, live, await broker.staff("evan", Role.ENGINEERING, "Evan"))
    await admit_viewer(broker, live, agent, evan)
    forged = pack_header(kind, rita.slot, 1, 1, NO_FLAGS) + b"\x00" * 48
    before = len(evan.peer.binaries), len(agent.peer.binaries)
    await rita.peer.ws.send_bytes(forged)
    assert await rita.peer.closed() == CloseCode.BAD_MESSAGE
    await _agent_is_intact(broker, live, agent)
    assert forged not in evan.peer.binaries[before[0] :]
    assert forged not in agent.peer.binaries[before[1] :]
    await evan.peer.close()
    await agent.peer.close()


async def test_a_viewer_changing_its_key_over_and_over_is_closed(broker: Broker) -> None:
    """Each new key is relayed to everyone: a fifth change on one connection closes it."""
    live, agent, rita = await admitted_session(broker)
    before = len([k for k in agent.peer.of(msg.PublicKeyAnnounce) if k.slot == rita.slot])
    for _ in range(MAX_KEY_ANNOUNCEMENTS):  # the join announced one already
        await rita.peer.send(KeyPair.generate().public.announce(rita.slot))
    assert await rita.peer.closed() == CloseCode.BAD_MESSAGE
    relayed = [k for k in agent.peer.of(msg.PublicKeyAnnounce) if k.slot == rita.slot]
    assert len(relayed) - before == MAX_KEY_ANNOUNCEMENTS - 1
    await _agent_is_intact(broker, live, agent)
    await agent.peer.close()


async def test_control_requests_are_rate_limited_so_prompts_cannot_flood_the_customer(
    broker: Broker,
) -> None:
    live, agent, rita = await admitted_session(broker)
    burst = int(CONTROL_REQUEST_RATE[1])
    for number in range(burst + 2):
        await rita.peer.send(msg.ControlRequest(f"req-{number}", rita.slot, "again"))
    refused = await rita.peer.wait(
        lambda: [e for e in rita.peer.of(msg.ErrorMessage) if e.code == "rate_limited"]
    )
    assert refused, "requests beyond the burst are refused"
    asked = [r for r in agent.peer.of(msg.ConsentRequest) if r.permission == "control"]
    assert len(asked) <= burst, "the customer is asked at most the burst"
    assert not rita.peer.ws.closed, "an answer, not a close"
    await rita.peer.close()
    await agent.peer.close()


async def test_a_viewers_chat_flood_closes_only_that_viewer(broker: Broker) -> None:
    live, agent, rita = await admitted_session(broker)
    epoch = agent.sender.epoch if agent.sender else 1
    sent = 0
    while not rita.peer.ws.closed and sent < 200:
        line = pack_header(FrameType.CHAT, rita.slot, epoch, sent + 1, NO_FLAGS) + b"\x01" * 40
        try:
            await rita.peer.ws.send_bytes(line)
        except ConnectionError:
            break
        sent += 1
    assert await rita.peer.closed() == CloseCode.RATE_LIMITED
    events = await audit_events(broker, live.session_id)
    chats = [e for e in events if e["action"] == "session.chat"]
    assert int(CHAT_RATE[1]) <= len(chats) < sent, "the burst is audited, the refused line not"
    await _agent_is_intact(broker, live, agent)
    await agent.peer.close()
