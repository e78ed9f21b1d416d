"""Attacks on the relay's own protections, against the real broker on loopback.

Each test tries to break one limit of docs/security.md's relay table: a message flood, a viewer
that never reads, a second connection with the same token, a viewer speaking under another
slot, oversized or malformed messages, a peer that stops answering pings, and a session whose
agent never comes back after a broker restart. Each checks that the offender gets the
documented close code and that everyone else in the session, or in other sessions, carries on.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import aiohttp
import pytest

from broker.app import AGENT_LOST_AFTER_RESTART, AGENT_NEVER_CONNECTED, create_app, sweep
from broker.errors import CloseCode
from broker.relay.handlers import HUB_KEY
from broker.relay.hub import Hub
from broker.relay.limits import MAX_MESSAGE
from broker.settings import Settings
from broker.types import Role
from rsb_protocol import messages as msg
from rsb_protocol.e2e import PairwiseChannel, PublicKey, Side
from rsb_protocol.framing import (
    BROADCAST_SLOT,
    CUSTOMER_SLOT,
    HEADER_SIZE,
    NO_FLAGS,
    FrameType,
    pack_header,
    peek_position,
    peek_route,
)
from tests.conftest import Broker, ClientFactory, FakeClock
from tests.integration.test_api_input import CASE
from tests.relay_peers import Peer, ScriptedAgent, ScriptedViewer, connect, subprotocols
from tests.relay_sessions import (
    Live,
    admit_viewer,
    audit_events,
    bearer_token,
    join_viewer,
    live_session,
    until,
)

FLOOD_CAP = 200_000
"""Far more messages than any rate limit lets through: a flood that ends here was not stopped."""
CONTROL_LIMIT = 16
"""Undelivered control messages a peer may have queued in the pile-up test (default 256)."""
SMALL_TCP_BUFFER = 16 * 1024
"""Socket buffer of the stalled viewer's connection, both ends (the kernel doubles it)."""
KEYFRAME_SIZE = 1024 * 1024
"""Far above what the stalled socket and the broker's write buffer take (256 KiB)."""
HEARTBEAT = 1.0
"""Seconds between pings in the heartbeat test (default 20); a pong may take half of it."""
WAIT = 10.0


def _hub(broker: Broker) -> Hub:
    return broker.client.app[HUB_KEY]


async def _flood(peer: Peer, send: Callable[[], Awaitable[None]]) -> int:
    """Send as fast as the socket takes it until the broker closes it (or the cap)."""
    sent = 0
    while not peer.ws.closed and sent < FLOOD_CAP:
        try:
            await send()
        except ConnectionResetError:  # the broker closed it under us
            break
        sent += 1
        if sent % 100 == 0:
            await asyncio.sleep(0)  # let the reader see the close frame
    return sent


async def _screen_reaches(agent: ScriptedAgent, viewer: ScriptedViewer, payload: bytes) -> None:
    await agent.screen(payload)
    await viewer.peer.wait(lambda: payload in viewer.open_all())


# --- 1. rate limit ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["binary", "text", "ping", "pong"])
async def test_a_flooding_viewer_is_closed_4029_and_the_session_carries_on(
    broker: Broker, kind: str
) -> None:
    live = await live_session(broker)
    desk = await broker.staff("dana", Role.DESK, "Dana Desk")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    dana = await join_viewer(broker, live, desk)
    await admit_viewer(broker, live, agent, rita)
    await admit_viewer(broker, live, agent, dana)
    ack = pack_header(FrameType.ACK, dana.slot, 0, 0, NO_FLAGS)  # seq 0: never forwarded
    hello = msg.Hello(msg.Role.VIEWER, (msg.KeyAlgorithm.X25519,), "flood").to_json()

    async def one() -> None:
        if kind == "binary":
            await dana.peer.ws.send_bytes(ack)
        elif kind == "ping":  # each one makes the broker write a pong
            await dana.peer.ws.ping(b"flood")
        elif kind == "pong":  # unsolicited, as RFC 6455 allows: still a message to handle
            await dana.peer.ws.pong(b"flood")
        else:
            await dana.peer.ws.send_str(hello)

    sent = await _flood(dana.peer, one)
    assert await dana.peer.closed() == CloseCode.RATE_LIMITED, f"after {sent} messages"
    assert sent < FLOOD_CAP
    # The agent and the other viewer keep their sockets; frames and ACKs still flow.
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == dana.slot])
    await _screen_reaches(agent, rita, b"after the flood")
    await rita.ack_latest()
    acks = await agent.peer.wait(lambda: agent.peer.frames(FrameType.ACK))
    assert [peek_route(a)[1] for a in acks] == [rita.slot]
    assert not agent.peer.ws.closed and not rita.peer.ws.closed
    await agent.peer.close()
    await rita.peer.close()


# --- 2. a viewer that never reads ------------------------------------------------------------


async def test_a_stalled_viewer_loses_deltas_once_then_is_closed_4201_when_control_piles_up(
    broker: Broker,
) -> None:
    hub = _hub(broker)
    hub.limits = replace(hub.limits, max_queued_control=CONTROL_LIMIT)
    live = await live_session(broker)
    other = await broker.staff("evan", Role.ENGINEERING, "Evan Eng")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    fast = await join_viewer(broker, live, live.staff)
    slow = await join_viewer(broker, live, other)
    await admit_viewer(broker, live, agent, fast)
    await admit_viewer(broker, live, agent, slow)
    room = hub.room(live.session_id)
    assert room is not None
    stalled = room.viewers[slow.slot]
    # A slow reader on a small TCP window: with Linux's autotuning (receive buffers up to
    # 32 MiB) the kernel would soak up megabytes before the broker's queue saw any pressure.
    assert stalled._transport is not None
    for sock, option in (
        (slow.peer.ws.get_extra_info("socket"), socket.SO_RCVBUF),
        (stalled._transport.get_extra_info("socket"), socket.SO_SNDBUF),
    ):
        sock.setsockopt(socket.SOL_SOCKET, option, SMALL_TCP_BUFFER)
    assert slow.peer._task is not None
    slow.peer._task.cancel()  # it stops reading: its socket fills, then the broker's queue
    payload = b"d" * 60_000
    sent = overflowed_at = 0
    while not overflowed_at or sent < overflowed_at + 20:  # and 20 more while it stays stalled
        assert sent < 500, "the stalled viewer's queue never overflowed"
        await agent.screen(payload, FrameType.SCREEN_UPDATE)
        sent += 1
        overflowed_at = overflowed_at or (sent if stalled.dropped else 0)
        assert stalled._bytes <= hub.limits.max_queued_bytes, "queued bytes are bounded"
        assert stalled._frames <= hub.limits.max_queued_frames
    # The fast viewer got every delta; once every frame was handled (its ACK comes after them
    # on the agent's socket), the agent was asked for one keyframe for the stalled viewer.
    await fast.peer.wait(lambda: len(fast.peer.frames(FrameType.SCREEN_UPDATE)) >= sent, 20)
    await fast.ack_latest()
    await agent.peer.wait(lambda: agent.peer.frames(FrameType.ACK))
    requests = [peek_route(r)[1] for r in agent.peer.frames(FrameType.KEYFRAME_REQUEST)]
    assert requests == [slow.slot], "one request while stalled, none for the fast viewer"
    # The agent answers with a keyframe. Keyframes are never dropped, so this one fills the
    # stalled socket and the broker's writer for that viewer waits on it from now on.
    await agent.screen(b"k" * KEYFRAME_SIZE, FrameType.KEYFRAME)
    await fast.peer.wait(lambda: fast.peer.frames(FrameType.KEYFRAME))
    assert stalled._bytes <= hub.limits.max_queued_bytes
    # Control messages are never dropped either: they pile up until the viewer is closed.
    # (The agent's key announcements, one at a time so the fast viewer keeps up: a viewer's
    # own repeated ones are no longer relayed.)
    announces = len(fast.peer.of(msg.PublicKeyAnnounce))
    for count in range(1, CONTROL_LIMIT + 5):
        await agent.peer.send(agent.keys.public.announce(0))
        await fast.peer.wait(
            lambda count=count: len(fast.peer.of(msg.PublicKeyAnnounce)) >= announces + count
        )
    assert stalled.closed, "the stalled viewer is being closed"
    assert stalled._control <= CONTROL_LIMIT and stalled._bytes <= hub.limits.max_queued_bytes
    slow.peer.start()  # it reads again: what was queued, then the close
    assert await slow.peer.closed() == CloseCode.FLOW_CONTROL
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == slow.slot])
    await _screen_reaches(agent, fast, b"the others carry on")
    assert not agent.peer.ws.closed and not fast.peer.ws.closed
    await agent.peer.close()
    await fast.peer.close()


# --- 3. a second connection with the same token ---------------------------------------------


async def test_a_second_agent_takes_over_and_the_first_is_closed_4104_and_audited(
    broker: Broker,
) -> None:
    live = await live_session(broker)
    first = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    await first.peer.wait(lambda: first.peer.of(msg.ConsentRequest))
    second = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    assert await first.peer.closed() == CloseCode.REPLACED
    # The newcomer holds the session: it is sent the open consent request and the viewer's key.
    request = await second.peer.wait(lambda: second.peer.of(msg.ConsentRequest))
    await second.peer.wait(lambda: second.viewer_key(viewer.slot))
    await second.grant(request[-1])
    await viewer.peer.wait(lambda: [s for s in viewer.peer.of(msg.State) if s.viewing_slots])
    await second.admit([viewer.slot])
    await _screen_reaches(second, viewer, b"from the newcomer")
    events = await audit_events(broker, live.session_id)
    replaced = [e for e in events if e["action"] == "relay.replaced"]
    assert len(replaced) == 1 and replaced[0]["details"]["kind"] == "agent", replaced
    assert replaced[0]["actor"] == f"agent:{live.session_id}"
    # A take-over is not a disconnect: the session never lost its agent.
    assert "session.agent_disconnected" not in [e["action"] for e in events]
    await second.peer.close()
    await viewer.peer.close()


async def test_a_second_viewer_connection_replaces_the_first_4104_and_is_audited(
    broker: Broker,
) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    old = await join_viewer(broker, live, live.staff)
    new = await join_viewer(broker, live, live.staff)
    assert await old.peer.closed() == CloseCode.REPLACED
    assert new.slot == old.slot
    events = await audit_events(broker, live.session_id)
    replaced = [e for e in events if e["action"] == "relay.replaced"]
    assert [(e["actor"], e["details"]["kind"]) for e in replaced] == [("rita", "viewer")]
    await agent.peer.close()
    await new.peer.close()


# --- 4. a viewer speaking under another slot ---------------------------------------------------


async def test_frames_under_another_viewers_slot_are_dropped_and_audited(broker: Broker) -> None:
    live = await live_session(broker)
    desk = await broker.staff("dana", Role.DESK, "Dana Desk")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    dana = await join_viewer(broker, live, desk)
    await admit_viewer(broker, live, agent, rita)
    await admit_viewer(broker, live, agent, dana)
    await rita.peer.send(msg.ControlRequest("req-r", rita.slot, "fix the printer"))
    ask = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission == "control"]
    )
    await agent.grant(ask[0])
    await dana.peer.wait(
        lambda: [s for s in dana.peer.of(msg.State) if s.controller_slot == rita.slot]
    )
    epoch = agent.sender.epoch if agent.sender else 1
    agent_key = dana.agent_key()
    assert agent_key is not None
    # Dana, an observer, claims the controller's slot on every frame type a viewer may send.
    as_rita = PairwiseChannel(
        live.session_id,
        dana.keys,
        PublicKey.from_announce(agent_key),
        rita.slot,
        Side.VIEWER,
        epoch,
    )
    spoofed = [
        as_rita.seal(FrameType.INPUT, b'{"type":"text","text":"evil"}'),
        pack_header(FrameType.ACK, rita.slot, 0, 500, NO_FLAGS),
        pack_header(FrameType.KEYFRAME_REQUEST, rita.slot, 0, 0, NO_FLAGS),
        as_rita.seal(FrameType.CHAT, b"i am rita"),
        pack_header(FrameType.ACK, BROADCAST_SLOT, 0, 600, NO_FLAGS),
    ]
    await _screen_reaches(agent, dana, b"something to acknowledge")
    for frame in spoofed:
        await dana.peer.ws.send_bytes(frame)
    # Her own ACK of what she was sent, after the others on her socket: it reaches the agent.
    position = await dana.ack_latest()
    acks = await agent.peer.wait(lambda: agent.peer.frames(FrameType.ACK))
    assert [(peek_route(a)[1], peek_position(a)) for a in acks] == [(dana.slot, position)]
    assert not agent.peer.frames(FrameType.INPUT, FrameType.KEYFRAME_REQUEST, FrameType.CHAT)
    # The real controller's input still passes, and only it.
    await rita.send_input(b'{"type":"text","text":"hello"}', epoch)
    await agent.peer.wait(lambda: agent.peer.frames(FrameType.INPUT))
    key = agent.viewer_key(rita.slot)
    assert key is not None
    assert agent.inputs(rita.slot, key) == [b'{"type":"text","text":"hello"}']
    assert not dana.peer.ws.closed
    # Dropped, and audited against Dana: the first drop at once (later ones are batched).
    events = await audit_events(broker, live.session_id)
    dropped = [e for e in events if e["action"] == "relay.input_dropped"]
    assert [(e["actor"], e["details"]["count"]) for e in dropped] == [("dana", 1)]
    # The batched rest is written when her socket closes, even if the server cancels the
    # handler of a socket whose client went away (the cleanup is shielded).
    await dana.peer.close()
    for _ in range(100):
        events = await audit_events(broker, live.session_id)
        dropped = [e for e in events if e["action"] == "relay.input_dropped"]
        if len(dropped) == 2:
            break
        await asyncio.sleep(0.05)
    assert [(e["actor"], e["details"]["count"]) for e in dropped] == [("dana", 1), ("dana", 4)]
    await agent.peer.close()
    await rita.peer.close()


# --- 5. sizes, versions and short garbage -----------------------------------------------------


async def _close_of(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Read until the broker closes; its close code and reason."""
    while True:
        message = await asyncio.wait_for(ws.receive(), WAIT)
        if message.type is aiohttp.WSMsgType.CLOSE:
            return message.data, message.extra or ""
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return ws.close_code, ""


async def _answers(peer: Peer, probe: msg.Message) -> None:
    """The socket is open and handled what came before: an invalid move is answered."""
    errors = len(peer.of(msg.ErrorMessage))
    await peer.send(probe)
    await peer.wait(lambda: len(peer.of(msg.ErrorMessage)) > errors)


def _endpoints(live: Live) -> dict[str, tuple[str, str]]:
    return {
        "agent": ("/ws/agent", live.agent_token),
        "viewer": (f"/ws/viewer/{live.session_id}", bearer_token(live.staff)),
        "customer": ("/ws/customer", live.customer_token),
    }


# A message each endpoint may send that the session rules refuse (answered with an error).
_PROBES: dict[str, msg.Message] = {
    "agent": msg.ConsentGrant("req-x", 4242, msg.Permission.VIEW),
    "viewer": msg.ControlRelease(1),
    "customer": msg.Resume(msg.Role.CUSTOMER),
}
# A frame of exactly the endpoint's limit that the broker accepts and does not relay.
_AT_LIMIT_HEADERS = {
    "agent": pack_header(FrameType.SCREEN_UPDATE, BROADCAST_SLOT, 1, 1, NO_FLAGS),
    "viewer": pack_header(FrameType.ACK, 1, 0, 0, NO_FLAGS),
    "customer": pack_header(FrameType.CHAT, CUSTOMER_SLOT, 1, 1, NO_FLAGS),
}


@pytest.mark.parametrize("kind", ["agent", "viewer", "customer"])
async def test_each_endpoint_takes_its_limit_and_closes_1009_above_it(
    broker: Broker, kind: str
) -> None:
    live = await live_session(broker)
    path, token = _endpoints(live)[kind]
    limit = MAX_MESSAGE[kind]
    peer = await connect(broker.client, path, token)
    await peer.wait(lambda: peer.of(msg.Welcome))
    header = _AT_LIMIT_HEADERS[kind]
    await peer.ws.send_bytes(header + b"\x00" * (limit - len(header)))
    await _answers(peer, _PROBES[kind])
    _declare_binary_message(peer.ws, limit + 1)
    assert await peer.closed() == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


def _declare_binary_message(ws: aiohttp.ClientWebSocketResponse, size: int) -> None:
    """Write just the header of a binary message of ``size`` bytes (RFC 6455 section 5.2).

    The broker must refuse it on the declared length alone, before buffering any of it. Sending
    the whole 8 MiB instead leaves most of it unread when the broker closes, and the reset that
    follows can destroy the close frame before the client reads it.
    """
    header = struct.pack(">BBQ", 0x82, 0x80 | 127, size) + bytes(4)  # FIN+binary, masked, key 0
    ws._writer.transport.write(header)  # aiohttp has no public way to send a partial frame


async def test_wrong_versions_and_short_garbage_close_4400_and_leave_other_sessions_alone(
    broker: Broker,
) -> None:
    live = await live_session(broker)
    # Another session, streaming, that must not notice any of this.
    other = await live_session(broker, "olga", Role.ENGINEERING)
    other_agent = await ScriptedAgent.join(broker.client, other.agent_token, other.session_id)
    other_viewer = await join_viewer(broker, other, other.staff)
    await admit_viewer(broker, other, other_agent, other_viewer)
    await _screen_reaches(other_agent, other_viewer, b"before")
    v1 = pack_header(FrameType.ACK, 1, 0, 0, NO_FLAGS)
    attempts: list[tuple[str, bytes | str, str]] = [
        ("version", json.dumps({"v": 2, "type": "hello", "role": "viewer"}), "version"),
        ("version", bytes([0xB2]) + v1[1:], "version"),
        *[("short", b"\xb1\x09" + b"\x00" * (n - 2), "shorter than the header") for n in (2, 17)],
        ("short", b"", "shorter than the header"),
        ("short", b"\x07", "shorter than the header"),
    ]
    assert all(len(a[1]) < HEADER_SIZE for a in attempts if a[0] == "short")
    for kind, (path, token) in _endpoints(live).items():
        for what, data, reason in attempts:
            ws = await broker.client.ws_connect(path, protocols=subprotocols(token))
            if isinstance(data, str):
                await ws.send_str(data)
            else:
                await ws.send_bytes(data)
            code, said = await _close_of(ws)
            assert (code, reason in said) == (CloseCode.BAD_MESSAGE, True), (kind, what, said)
    # The other session's peers kept their sockets, saw no one leave, and frames still flow.
    await _screen_reaches(other_agent, other_viewer, b"after")
    assert not other_agent.peer.ws.closed and not other_viewer.peer.ws.closed
    assert not other_viewer.peer.of(msg.Leave) and not other_agent.peer.of(msg.Leave)
    assert not other_viewer.peer.of(msg.ErrorMessage)
    await other_agent.peer.close()
    await other_viewer.peer.close()


# --- 6. heartbeat ------------------------------------------------------------------------------


async def _answer_pings(ws: aiohttp.ClientWebSocketResponse, pings: list[bytes]) -> None:
    """A client that answers pings itself, so the test can count them."""
    async for message in ws:
        if message.type is aiohttp.WSMsgType.PING:
            pings.append(message.data)
            await ws.pong(message.data)


async def test_a_peer_that_stops_answering_pings_is_dropped_and_the_others_stay(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock
) -> None:
    # The interval comes from the setting, as an operator would shorten it.
    shortened = replace(settings, relay_heartbeat=timedelta(seconds=HEARTBEAT))
    broker = Broker(await aiohttp_client(create_app(shortened, clock=clock)), clock)
    hub = _hub(broker)
    assert hub.limits.heartbeat == HEARTBEAT
    live = await live_session(broker)
    desk = await broker.staff("dana", Role.DESK, "Dana Desk")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer_path = f"/ws/viewer/{live.session_id}"
    # Dana's client reads everything but never answers a ping, like a frozen or vanished host.
    silent = await connect(broker.client, viewer_path, bearer_token(desk), autoping=False)
    welcome = await silent.wait(lambda: silent.of(msg.Welcome))
    # Rita's answers every ping, and counts them.
    answering = await broker.client.ws_connect(
        viewer_path, protocols=subprotocols(bearer_token(live.staff)), autoping=False
    )
    pings: list[bytes] = []
    reader = asyncio.create_task(_answer_pings(answering, pings))
    gone = await agent.peer.wait(
        lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == welcome[0].slot],
        timeout=WAIT,
    )
    assert gone[0].reason == "disconnected"
    # Dropped without a closing handshake: there is no one left to answer it.
    assert await silent.closed() == aiohttp.WSCloseCode.ABNORMAL_CLOSURE
    # Rita answered three pings in a row, so she outlived two more rounds; she is still here.
    await until(lambda: len(pings) >= 3, "three pings answered")
    room = hub.room(live.session_id)
    assert room is not None and [p.participant for p in room.viewers.values()] == ["rita"]
    assert not answering.closed and not agent.peer.ws.closed
    await answering.close()
    await reader
    await agent.peer.close()


@pytest.mark.parametrize("kind", ["agent", "viewer", "customer"])
async def test_each_endpoint_answers_a_clients_ping(broker: Broker, kind: str) -> None:
    # The agent's WebSocket library pings the broker on its own and gives up on a broker that
    # does not answer; the broker answers pings itself (no autoping, see hub.ticking).
    live = await live_session(broker)
    path, token = {
        "agent": ("/ws/agent", live.agent_token),
        "viewer": (f"/ws/viewer/{live.session_id}", bearer_token(live.staff)),
        "customer": ("/ws/customer", live.customer_token),
    }[kind]
    ws = await broker.client.ws_connect(path, protocols=subprotocols(token), autoping=False)
    await ws.ping(b"are you there")
    message = await ws.receive(timeout=WAIT)
    while message.type is aiohttp.WSMsgType.TEXT:  # the welcome and the room's news
        message = await ws.receive(timeout=WAIT)
    assert (message.type, message.data) == (aiohttp.WSMsgType.PONG, b"are you there")
    await ws.close()


# --- the lifecycle after a broker restart --------------------------------------------------------


async def _new_session(broker: Broker, staff: dict[str, str]) -> Live:
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=staff, json=CASE)
    session = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=staff
    )
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    return Live(session["id"], joined["agent_token"], joined["customer_token"], staff)


async def test_after_a_restart_a_session_whose_agent_never_returns_is_ended(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock
) -> None:
    before = Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)
    staff = await before.staff("rita", Role.RSE, "Rita Reyes")
    lost, back, watched = [await _new_session(before, staff) for _ in range(3)]
    agents = [
        await ScriptedAgent.join(before.client, live.agent_token, live.session_id)
        for live in (lost, back, watched)
    ]
    for live in (lost, back, watched):
        await until(functools.partial(_is_active, before, live), "the session is active")
    assert all(not a.peer.ws.closed for a in agents)
    await before.client.server.close()  # the broker stops; the sessions stay active, resumable
    assert [await a.peer.closed() for a in agents] == [aiohttp.WSCloseCode.GOING_AWAY] * 3

    after = Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)
    headers = await after.login("rita")
    window = settings.resume_window
    # `back`: its agent reconnects. `watched`: only an engineer's console does.
    agent = await ScriptedAgent.join(after.client, back.agent_token, back.session_id)
    viewer = await ScriptedViewer.join(after.client, bearer_token(headers), watched.session_id)
    lives = (lost, back, watched)
    states = await _swept_later(after, window.total_seconds() - 1, lives, headers)
    assert states == [("active", None)] * 3, "within the window an agent may still come back"
    states = await _swept_later(after, 2, lives, headers)
    assert states == [
        ("ended", AGENT_LOST_AFTER_RESTART),
        ("active", None),
        ("ended", AGENT_LOST_AFTER_RESTART),
    ]
    assert await viewer.peer.closed() == CloseCode.SESSION_ENDED
    assert not agent.peer.ws.closed
    for live in (lost, watched):
        ended = [
            e for e in await audit_events(after, live.session_id) if e["action"] == "session.ended"
        ]
        assert len(ended) == 1 and ended[0]["actor"] == "system", ended
        assert ended[0]["details"]["reason"] == AGENT_LOST_AFTER_RESTART
    # An ended session stays ended: its agent coming back now is refused.
    late = await connect(after.client, "/ws/agent", lost.agent_token)
    assert await late.closed() == CloseCode.SESSION_ENDED
    await agent.peer.close()


async def test_a_joined_session_whose_agent_never_connects_is_ended_after_the_timeout(
    broker: Broker, settings: Settings, clock: FakeClock
) -> None:
    headers = await broker.staff("rita", Role.RSE, "Rita Reyes")
    never, connected, watched = [await _new_session(broker, headers) for _ in range(3)]
    agent = await ScriptedAgent.join(broker.client, connected.agent_token, connected.session_id)
    await until(functools.partial(_is_active, broker, connected), "the session is active")
    # An engineer's console waiting in the room does not count as an agent.
    viewer = await ScriptedViewer.join(broker.client, bearer_token(headers), watched.session_id)
    lives = (never, connected, watched)
    timeout = settings.agent_connect_timeout.total_seconds()
    states = await _swept_later(broker, timeout - 1, lives, headers)
    assert states == [("waiting", None), ("active", None), ("waiting", None)]
    states = await _swept_later(broker, 2, lives, headers)
    assert states == [
        ("ended", AGENT_NEVER_CONNECTED),
        ("active", None),
        ("ended", AGENT_NEVER_CONNECTED),
    ]
    assert await viewer.peer.closed() == CloseCode.SESSION_ENDED
    events = await audit_events(broker, never.session_id)
    ended = [e for e in events if e["action"] == "session.ended"]
    assert len(ended) == 1 and ended[0]["actor"] == "system"
    assert ended[0]["details"]["reason"] == AGENT_NEVER_CONNECTED
    # Too late now: the agent that finally starts is refused.
    late = await connect(broker.client, "/ws/agent", never.agent_token)
    assert await late.closed() == CloseCode.SESSION_ENDED
    assert not agent.peer.ws.closed
    await agent.peer.close()


async def _is_active(broker: Broker, live: Live) -> bool:
    return (await broker.services.sessions.get(live.session_id)).state == "active"


async def _swept_later(
    broker: Broker, seconds: float, lives: tuple[Live, ...], headers: dict[str, str]
) -> list[tuple[str, str | None]]:
    """Move the clock on, run one sweeper pass, and read each session's state and end reason."""
    broker.clock.advance(seconds=seconds)
    await sweep(broker.client.app)
    return [await _get_state(broker, live, headers) for live in lives]


async def _get_state(broker: Broker, live: Live, headers: dict[str, str]) -> tuple[str, str | None]:
    session = await broker.call(
        "GET", f"/api/v1/sessions/{live.session_id}", status=200, headers=headers
    )
    return session["state"], session["end_reason"]


async def test_shutdown_lets_a_connections_cleanup_finish_before_the_database_closes(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock
) -> None:
    before = Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)
    live = await live_session(before)
    agent = await ScriptedAgent.join(before.client, live.agent_token, live.session_id)
    await until(functools.partial(_is_active, before, live), "the session is active")
    room = before.client.app[HUB_KEY].rooms[live.session_id]
    # The agent's cleanup will wait for the room (as behind a slow audit write) while the
    # broker shuts down around it; the room is free again a moment later.
    await room.lock.acquire()
    asyncio.get_running_loop().call_later(0.3, room.lock.release)
    await before.client.server.close()
    assert await agent.peer.closed() == aiohttp.WSCloseCode.GOING_AWAY
    after = Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)
    actions = [e["action"] for e in await audit_events(after, live.session_id)]
    # Written before the database closed, not lost to "Cannot operate on a closed database".
    assert actions[-1] == "session.agent_disconnected", actions
