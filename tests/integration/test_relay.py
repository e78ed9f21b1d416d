"""The relay on the real broker: consent gates frames, only the controller's input passes,
the broker sees only ciphertext, and bad peers are closed with specific codes."""

from __future__ import annotations

import json
import socket
from typing import Any

import aiohttp
import pytest

from broker.errors import CloseCode
from broker.relay.handlers import HUB_KEY
from broker.types import Role
from rsb_protocol import messages as msg
from rsb_protocol.framing import FrameType, peek_route
from tests.conftest import Broker
from tests.relay_peers import ScriptedAgent, ScriptedViewer, connect, subprotocols
from tests.relay_sessions import admit_viewer, bearer_token, join_viewer, live_session

MARKER = b"CUSTOMER-SECRET-PAYROLL-4711"


async def test_no_frame_reaches_a_viewer_before_view_consent(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    request = await agent.peer.wait(lambda: agent.peer.of(msg.ConsentRequest))
    assert request[0].engineer_name == "Rita Reyes" and request[0].engineer_level == "L2"
    assert request[0].permission == "view" and request[0].case_number.startswith("C-")
    # A misbehaving agent streams before the customer answered: the broker relays nothing.
    for _ in range(3):
        await agent.screen(b"too early")
    await agent.peer.wait(lambda: agent.viewer_key(viewer.slot))
    await agent.grant(request[0])
    await viewer.peer.wait(lambda: [s for s in viewer.peer.of(msg.State) if s.viewing_slots])
    await agent.admit([viewer.slot])
    await agent.screen(b"after consent")
    opened = await viewer.peer.wait(viewer.open_all)
    assert opened == [b"after consent"]
    assert not [b for b in viewer.peer.binaries if b"too early" in b]
    await agent.peer.close()
    await viewer.peer.close()


async def test_the_broker_relays_and_records_only_ciphertext(broker: Broker, db_path: Any) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, viewer)
    sealed = await agent.screen(MARKER * 10)
    assert MARKER not in sealed
    opened = await viewer.peer.wait(viewer.open_all)
    assert opened == [MARKER * 10], "the viewer decrypts what the broker could not"
    assert all(MARKER not in frame for frame in viewer.peer.binaries)
    assert all(MARKER.decode() not in m.to_json() for m in viewer.peer.texts)
    await agent.peer.close()
    await viewer.peer.close()
    await broker.client.app[HUB_KEY].tick()
    assert MARKER not in db_path.read_bytes()
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.exists() or MARKER not in wal.read_bytes()


async def test_only_the_controller_sends_input(broker: Broker) -> None:
    live = await live_session(broker)
    observer_headers = await broker.staff("dana", Role.DESK, "Dana Desk")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    dana = await join_viewer(broker, live, observer_headers)
    await admit_viewer(broker, live, agent, rita)
    await admit_viewer(broker, live, agent, dana)
    # Desk engineers may not take control at all (role table), whatever the customer says.
    await dana.peer.send(msg.ControlRequest("req-d", dana.slot, "let me"))
    refused = await dana.peer.wait(lambda: dana.peer.of(msg.ErrorMessage))
    assert refused[0].code == "forbidden"
    await rita.peer.send(msg.ControlRequest("req-r", rita.slot, "open settings"))
    ask = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission == "control"]
    )
    assert ask[0].slot == rita.slot
    # Input before the grant is dropped ...
    epoch = agent.sender.epoch if agent.sender else 1
    await rita.send_input(b'{"type":"text","text":"early"}', epoch)
    await agent.grant(ask[0])
    await rita.peer.wait(
        lambda: [s for s in rita.peer.of(msg.State) if s.controller_slot == rita.slot]
    )
    await rita.send_input(b'{"type":"text","text":"hello"}', epoch)
    # ... the observer's input is dropped, even when it pretends to be the controller's slot.
    await dana.send_input(b'{"type":"text","text":"evil"}', epoch)
    frames = await agent.peer.wait(lambda: agent.peer.frames(FrameType.INPUT))
    assert len(frames) == 1 and peek_route(frames[0])[1] == rita.slot
    key = agent.viewer_key(rita.slot)
    assert key is not None
    assert agent.inputs(rita.slot, key) == [b'{"type":"text","text":"hello"}']
    # Revocation stops input at once.
    await agent.peer.send(msg.ConsentRevoke(rita.slot, msg.Permission.CONTROL, "customer"))
    await rita.peer.wait(
        lambda: [
            s for s in rita.peer.of(msg.State) if s.controller_slot is None and s.viewing_slots
        ]
    )
    sync = await agent.screen(b"sync")
    await rita.peer.wait(lambda: sync in rita.peer.binaries)
    await rita.send_input(b'{"type":"text","text":"late"}', epoch)
    await rita.ack_latest()  # a frame after the input: once it arrives, the input was handled
    await agent.peer.wait(lambda: agent.peer.frames(FrameType.ACK))
    assert len(agent.peer.frames(FrameType.INPUT)) == 1
    sec = await broker.staff("sam", Role.SECURITY)
    events = await broker.call(
        "GET", f"/api/v1/audit?session={live.session_id}", status=200, headers=sec
    )
    actions = [e["action"] for e in events["events"]]
    assert "session.control_granted" in actions and "session.control_revoked" in actions
    dropped = [e for e in events["events"] if e["action"] == "relay.input_dropped"]
    assert {e["actor"] for e in dropped} >= {"rita"}
    for peer in (agent.peer, rita.peer, dana.peer):
        await peer.close()
    # The observer's dropped input is audited when its connection closes.
    await broker.client.app[HUB_KEY].tick()
    events = await broker.call(
        "GET", f"/api/v1/audit?session={live.session_id}", status=200, headers=sec
    )
    assert "dana" in {e["actor"] for e in events["events"] if e["action"] == "relay.input_dropped"}


async def test_a_viewer_that_left_cannot_read_the_next_epoch(broker: Broker) -> None:
    live = await live_session(broker)
    second = await broker.staff("evan", Role.ENGINEERING, "Evan Eng")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    evan = await join_viewer(broker, live, second)
    await admit_viewer(broker, live, agent, rita)
    await admit_viewer(broker, live, agent, evan)
    await agent.screen(b"both see this")
    await evan.peer.wait(evan.open_all)
    await rita.peer.wait(lambda: len(rita.open_all()) >= 1)
    # Evan leaves; the agent starts a new epoch wrapped only to Rita.
    await evan.peer.close()
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == evan.slot])
    await agent.admit([rita.slot])
    await agent.screen(b"only rita")
    await rita.peer.wait(lambda: b"only rita" in rita.open_all())
    # Even given every frame the broker relayed, Evan's keys cannot open the new epoch.
    evan.peer.binaries.extend(rita.peer.binaries)
    assert b"only rita" not in evan.open_all()
    await agent.peer.close()
    await rita.peer.close()


async def test_a_refused_customer_move_is_answered_and_the_page_stays(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    customer = await connect(broker.client, "/ws/customer", live.customer_token)
    await admit_viewer(broker, live, agent, viewer)
    # Resuming what is not paused is refused by the session rules: an error, not a close.
    await customer.send(msg.Resume(msg.Role.CUSTOMER))
    refused = await customer.wait(lambda: customer.of(msg.ErrorMessage))
    assert refused[0].code == "invalid_transition", refused
    await customer.send(msg.Pause(msg.Role.CUSTOMER, "a moment"))
    await viewer.peer.wait(lambda: viewer.peer.of(msg.State)[-1].phase == "paused")
    await agent.peer.close()
    await viewer.peer.close()
    await customer.close()


async def test_customer_page_revokes_and_ends(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    customer = await connect(broker.client, "/ws/customer", live.customer_token)
    await admit_viewer(broker, live, agent, viewer)
    await customer.wait(lambda: [s for s in customer.of(msg.State) if s.viewing_slots])
    await customer.send(msg.ConsentRevoke(viewer.slot, msg.Permission.VIEW, "that's enough"))
    revoked = await agent.peer.wait(lambda: agent.peer.of(msg.ConsentRevoke))
    assert revoked[0].slot == viewer.slot
    await viewer.peer.wait(lambda: viewer.peer.of(msg.State)[-1].viewing_slots == ())
    before = len(viewer.peer.binaries)
    await agent.screen(b"after revoke")
    await agent.peer.send(msg.Pause(msg.Role.AGENT, ""))  # any later message orders the check
    await viewer.peer.wait(lambda: viewer.peer.of(msg.State)[-1].phase == "paused")
    assert len(viewer.peer.binaries) == before
    await customer.send(msg.End(msg.Role.CUSTOMER, "done"))
    for peer in (agent.peer, viewer.peer, customer):
        assert await peer.closed() == CloseCode.SESSION_ENDED
    session = await broker.call(
        "GET", f"/api/v1/sessions/{live.session_id}", status=200, headers=live.staff
    )
    assert session["state"] == "ended"


async def test_agent_reconnects_and_keeps_consent(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, viewer)
    await agent.peer.ws.close(code=1006)  # the network drops
    await viewer.peer.wait(lambda: viewer.peer.of(msg.State)[-1].phase == "waiting")
    again = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    state = await again.peer.wait(lambda: again.peer.of(msg.State))
    assert viewer.slot in state[-1].viewing_slots, "no new prompt after a blip"
    assert not again.peer.of(msg.ConsentRequest)
    await again.peer.wait(lambda: again.viewer_key(viewer.slot))
    await again.admit([viewer.slot])
    await again.screen(b"resumed")
    await viewer.peer.wait(
        lambda: [
            k
            for k in viewer.peer.of(msg.PublicKeyAnnounce)
            if k.slot == 0 and k.key == again.keys.public.announce(0).key
        ]
    )
    # A fresh receiver for the agent's new key pair (the reconnected agent made a new one).
    fresh = ScriptedViewer(viewer.peer, live.session_id, viewer.slot, viewer.keys)
    assert b"resumed" in await viewer.peer.wait(fresh.open_all)
    await again.peer.close()
    await viewer.peer.close()


async def test_agent_lost_beyond_the_window_ends_the_session(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    await agent.peer.ws.close(code=1006)
    hub = broker.client.app[HUB_KEY]
    await agent.peer.closed()
    broker.clock.advance(minutes=3)
    await hub.tick()
    session = await broker.call(
        "GET", f"/api/v1/sessions/{live.session_id}", status=200, headers=live.staff
    )
    assert (session["state"], session["end_reason"]) == ("ended", "agent_lost")
    late = await connect(broker.client, "/ws/agent", live.agent_token)
    assert await late.closed() == CloseCode.SESSION_ENDED


async def test_refusals_have_specific_codes(broker: Broker) -> None:
    live = await live_session(broker)
    # Foreign Origin: refused before the upgrade.
    resp = await broker.client.get(
        "/ws/agent",
        headers={
            "Origin": "https://evil.example",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": ", ".join(subprotocols(live.agent_token)),
        },
    )
    assert resp.status == 403 and (await resp.json())["error"] == "origin_rejected"
    # No token, a token in the URL, the customer's token on the agent endpoint.
    ws = await broker.client.ws_connect("/ws/agent", protocols=("rsb.v1",))
    await ws.receive()
    assert ws.close_code == CloseCode.INVALID_TOKEN
    # Without rsb.v1 (a token in the URL, or the token alone as a subprotocol, which aiohttp
    # would log at WARNING): refused before the upgrade.
    for url, protocols in (
        (f"/ws/agent?token={live.agent_token}", ()),
        ("/ws/agent", (f"rsb.token.{live.agent_token}",)),
        (f"/ws/viewer/{live.session_id}", (f"rsb.token.{bearer_token(live.staff)}",)),
        ("/ws/customer", (f"rsb.token.{live.customer_token}", "rsb.v2")),
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await broker.client.ws_connect(url, protocols=protocols)
        assert refused.value.status == 400, url
    plain = await broker.client.get(
        "/ws/agent",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": f"rsb.token.{live.agent_token}",
        },
    )
    assert plain.status == 400 and (await plain.json())["error"] == "unsupported_version"
    wrong = await connect(broker.client, "/ws/agent", live.customer_token)
    assert await wrong.closed() == CloseCode.INVALID_TOKEN
    # A security reviewer may not observe customer screens.
    sec = await broker.staff("sam", Role.SECURITY)
    spy = await connect(broker.client, f"/ws/viewer/{live.session_id}", bearer_token(sec))
    assert await spy.closed() == CloseCode.FORBIDDEN
    # Unknown session; garbage frames; bad JSON; oversize message.
    ghost = await connect(broker.client, "/ws/viewer/nope", bearer_token(live.staff))
    assert await ghost.closed() == CloseCode.NOT_FOUND
    agent = await connect(broker.client, "/ws/agent", live.agent_token)
    await agent.ws.send_bytes(b"\x00garbage-not-a-frame")
    assert await agent.closed() == CloseCode.BAD_MESSAGE
    agent = await connect(broker.client, "/ws/agent", live.agent_token)
    await agent.ws.send_str(json.dumps({"v": 1, "type": "consent_grant"}))
    assert await agent.closed() == CloseCode.BAD_MESSAGE
    agent = await connect(broker.client, "/ws/agent", live.agent_token)
    await agent.ws.send_str(json.dumps({"v": 2, "type": "hello"}))
    assert await agent.closed() == CloseCode.BAD_MESSAGE
    viewer = await connect(broker.client, f"/ws/viewer/{live.session_id}", bearer_token(live.staff))
    await viewer.ws.send_bytes(b"\xb1" + b"\x01" * 300_000)
    assert await viewer.closed() == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    # The neighbours are unharmed: a fresh agent still works.
    fine = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    assert fine.peer.of(msg.Welcome)[0].case_number.startswith("C-")
    await fine.peer.close()


async def test_a_stalled_viewer_does_not_hold_up_the_others(broker: Broker) -> None:
    live = await live_session(broker)
    other = await broker.staff("evan", Role.ENGINEERING, "Evan Eng")
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    fast = await join_viewer(broker, live, live.staff)
    slow = await join_viewer(broker, live, other)
    await admit_viewer(broker, live, agent, fast)
    await admit_viewer(broker, live, agent, slow)
    hub = broker.client.app[HUB_KEY]
    room = hub.room(live.session_id)
    assert room is not None
    slow_peer = room.viewers[slow.slot]
    assert slow.peer._task is not None
    slow.peer._task.cancel()  # stop reading: the socket fills, then the broker's queue
    payload = b"x" * 60_000
    for _ in range(200):
        await agent.screen(payload, FrameType.SCREEN_UPDATE)
    await fast.peer.wait(lambda: len(fast.peer.frames(FrameType.SCREEN_UPDATE)) >= 200, 20)
    assert slow_peer.dropped > 0, "the stalled viewer's stale deltas were dropped"
    assert slow_peer._bytes <= hub.limits.max_queued_bytes
    requests = await agent.peer.wait(lambda: agent.peer.frames(FrameType.KEYFRAME_REQUEST))
    assert peek_route(requests[0])[1] == slow.slot
    await agent.peer.close()
    await fast.peer.close()


async def test_frames_of_every_header_length_arrive_whole(broker: Broker) -> None:
    """The broker writes frames itself on its fast path (``binary_frame_header``): each of the
    three length encodings, at their edges, must reach the viewer byte for byte."""
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    viewer = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, viewer)
    overhead = len(await agent.screen(b""))  # the envelope around an empty update
    before = len(await viewer.peer.wait(lambda: viewer.peer.frames(FrameType.KEYFRAME)))
    frame_sizes = [125, 126, 127, 65_535, 65_536, 65_537, 1_000_000]
    sent = [await agent.screen(bytes([n % 251]) * (n - overhead)) for n in frame_sizes]
    assert [len(frame) for frame in sent] == frame_sizes
    arrived = await viewer.peer.wait(
        lambda: len(viewer.peer.frames(FrameType.KEYFRAME)) >= before + len(sent)
    )
    assert arrived
    received = viewer.peer.frames(FrameType.KEYFRAME)[before:]
    assert received == sent
    await agent.peer.close()
    await viewer.peer.close()


async def test_server_sockets_have_nodelay(broker: Broker) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    hub = broker.client.app[HUB_KEY]
    room = hub.room(live.session_id)
    assert room is not None and room.agent is not None
    request = room.agent.ws._req  # the server side of the agent's WebSocket
    assert request is not None and request.transport is not None
    sock = request.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    await agent.peer.close()
