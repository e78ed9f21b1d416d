"""Ending live connections when access goes, on the real broker over real WebSockets.

The attack tour's finding: a disabled engineer kept control, and his keystrokes reached the
customer's terminal. Each test here tries that again (or its cousins: a revoked signing key,
an expired token) and checks the socket is closed with its documented code, nothing sent
after the revocation is relayed, the session sees the engineer go, and the audit says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web

from broker.audit.log import Actor
from broker.auth.keys import LEEWAY
from broker.auth.revocation import Credential
from broker.errors import AccessRevoked, CloseCode
from broker.relay.handlers import HUB_KEY
from broker.relay.hub import Hub
from broker.relay.peer import Peer
from broker.settings import Settings
from broker.types import ParticipantId, Role
from rsb_protocol import messages as msg
from rsb_protocol.e2e import PairwiseChannel, PublicKey, Side
from rsb_protocol.framing import FrameType
from tests.conftest import TEST_SETTINGS, Broker, rsb
from tests.relay_peers import Peer as ClientPeer
from tests.relay_peers import ScriptedAgent, ScriptedViewer, connect
from tests.relay_sessions import (
    Live,
    admit_viewer,
    audit_events,
    bearer_token,
    join_viewer,
    live_session,
    until,
)

RITA = ParticipantId("rita")
STAFF_TTL = timedelta(minutes=5)
"""A short staff token lifetime for this module (the default is an hour)."""
PACE = 0.002
"""Seconds between keystrokes (500 a second, under the viewer's rate limit)."""
SMALL_TCP_BUFFER = 16 * 1024
"""Socket buffer of a stalled viewer's connection, both ends, so the broker queues soon."""
KEYFRAME_SIZE = 256 * 1024
CLI_WAIT = 30.0
"""Bound on waiting for a change made by a CLI child process: its start-up plus one
reconcile interval (``RECONCILE_SECONDS``), with room for a slow machine."""


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings.from_mapping(
        {"db": str(db_path), "staff_token_ttl": STAFF_TTL.total_seconds(), **TEST_SETTINGS}
    )


async def _closed_within(peer: ClientPeer, timeout: float) -> int | None:
    await until(lambda: peer.ws.closed, "the socket is closed", timeout=timeout)
    return await peer.closed()


def _hub(broker: Broker) -> Hub:
    return broker.client.app[HUB_KEY]


def _kid(token: str) -> str:
    kid = jwt.get_unverified_header(token)["kid"]
    assert isinstance(kid, str)
    return kid


def _closed_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["action"] == "relay.closed"]


class Keystrokes:
    """The controller typing, concurrently with the rest of the test, until told to stop.

    One pairwise channel for all of them, so the agent opens every frame in order and each
    payload says which keystroke it was.
    """

    def __init__(self, viewer: ScriptedViewer, epoch: int) -> None:
        agent_key = viewer.agent_key()
        assert agent_key is not None
        self.viewer = viewer
        self.channel = PairwiseChannel(
            viewer.session_id,
            viewer.keys,
            PublicKey.from_announce(agent_key),
            viewer.slot,
            Side.VIEWER,
            epoch=epoch,
        )
        self.sent = 0
        self._until: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def type_one(self) -> None:
        text = json.dumps({"type": "text", "text": f"k{self.sent}"}).encode()
        await self.viewer.peer.ws.send_bytes(self.channel.seal(FrameType.INPUT, text))
        self.sent += 1

    def start(self) -> None:
        async def loop() -> None:
            while not self.done:
                await self.type_one()
                # Paced under the viewer's rate limit (1,000 a second), which would otherwise
                # close the socket with 4029 before the revocation does.
                await asyncio.sleep(PACE)

        self._task = asyncio.create_task(loop())

    @property
    def done(self) -> bool:
        return self._until is not None and self.sent >= self._until

    async def cut(self, then: int = 50) -> int:
        """Note how many were sent so far, then wait until ``then`` more are sent."""
        cut = self.sent
        self._until = cut + then
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)  # raises if a send failed
        return cut


async def _stall(agent: ScriptedAgent, viewer: ScriptedViewer, server_side: Peer) -> None:
    """The viewer stops reading (as a hostile console may) while the agent streams, until
    the broker has frames queued for it: a close the broker asks for now waits behind them,
    and the socket stays open, so what the viewer sends after a revocation really arrives.
    """
    assert server_side._transport is not None
    for sock, option in (
        (viewer.peer.ws.get_extra_info("socket"), socket.SO_RCVBUF),
        (server_side._transport.get_extra_info("socket"), socket.SO_SNDBUF),
    ):
        sock.setsockopt(socket.SOL_SOCKET, option, SMALL_TCP_BUFFER)
    assert viewer.peer._task is not None
    viewer.peer._task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await viewer.peer._task
    for _ in range(200):
        if server_side._frames:
            return
        await agent.screen(b"s" * KEYFRAME_SIZE)
    raise AssertionError("the broker never had to queue frames for the stalled viewer")


def _typed(agent: ScriptedAgent, viewer: ScriptedViewer) -> list[int]:
    """Which keystrokes reached the agent, by number."""
    key = agent.viewer_key(viewer.slot)
    assert key is not None
    return [int(json.loads(raw)["text"][1:]) for raw in agent.inputs(viewer.slot, key)]


async def _controlling(
    broker: Broker, live: Live
) -> tuple[ScriptedAgent, ScriptedViewer, Peer, Keystrokes]:
    """Rita watches and holds control, and one keystroke of hers has reached the agent.

    Returns:
        The agent, her viewer, the broker's peer for her and her keyboard.
    """
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, rita)
    await rita.peer.send(msg.ControlRequest("req-r", rita.slot, "open the settings"))
    ask = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission == "control"]
    )
    await agent.grant(ask[-1])
    await rita.peer.wait(
        lambda: [s for s in rita.peer.of(msg.State) if s.controller_slot == rita.slot]
    )
    keys = Keystrokes(rita, agent.sender.epoch if agent.sender else 1)
    await keys.type_one()
    await agent.peer.wait(lambda: _typed(agent, rita))  # control works: keystroke 0 arrives
    room = _hub(broker).rooms[live.session_id]
    assert room.controller is room.viewers[rita.slot]
    return agent, rita, room.viewers[rita.slot], keys


def _latest_state(agent: ScriptedAgent) -> tuple[str, tuple[int, ...], int | None] | None:
    states = agent.peer.of(msg.State)
    return (
        (states[-1].phase, states[-1].viewing_slots, states[-1].controller_slot) if states else None
    )


async def _agent_saw_leave(agent: ScriptedAgent, slot: int) -> None:
    """The agent heard the viewer leave: every frame the broker relayed from that viewer came
    before this message on the same socket."""
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.Leave) if m.slot == slot])


async def test_disabling_the_controller_over_http_cuts_his_input_at_once(broker: Broker) -> None:
    live = await live_session(broker)
    admin = await broker.staff("ada", Role.ADMIN, "Ada Admin")
    agent, rita, server_side, keys = await _controlling(broker, live)
    room = _hub(broker).rooms[live.session_id]
    await _stall(agent, rita, server_side)

    keys.start()  # typing on while the admin disables her
    await until(lambda: keys.sent > 20, "rita is typing")
    await broker.call("POST", "/api/v1/users/rita/disable", status=200, headers=admin)
    # The broker took control away before answering: no await was needed to see it.
    assert server_side.closed and room.controller is None
    cut = await keys.cut()  # fifty keystrokes sent after the disable returned, socket open
    assert not rita.peer.ws.closed
    rita.peer.start()  # she reads again: the queued frames, then the close
    assert await rita.peer.closed() == CloseCode.ACCESS_REVOKED

    await _agent_saw_leave(agent, rita.slot)
    typed = _typed(agent, rita)
    assert typed and typed == sorted(typed)
    assert max(typed) < cut, f"keystrokes {[k for k in typed if k >= cut]} reached the agent"
    # The session saw her leave for good (grants gone), not a resumable disconnect.
    await agent.peer.wait(lambda: _latest_state(agent) == ("pending_consent", (), None))
    assert room.state.participant(RITA) is None
    leave = [m for m in agent.peer.of(msg.Leave) if m.slot == rita.slot]
    assert leave[-1].reason == "access revoked"

    events = await audit_events(broker, live.session_id)
    closed = _closed_rows(events)
    assert [(e["actor"], e["details"]) for e in closed] == [
        (
            "ada",
            {
                "kind": "viewer",
                "slot": rita.slot,
                "participant": "rita",
                "code": CloseCode.ACCESS_REVOKED,
                "reason": "user_disabled",
            },
        )
    ]
    actions = [e["action"] for e in events]
    assert "session.participant_left" in actions
    assert "session.participant_disconnected" not in actions
    # The agent and the session carry on; Rita's token is refused everywhere.
    assert not agent.peer.ws.closed
    assert (await broker.client.get("/api/v1/me", headers=live.staff)).status == 401
    again = await connect(broker.client, f"/ws/viewer/{live.session_id}", bearer_token(live.staff))
    assert await again.closed() == CloseCode.INVALID_TOKEN
    await agent.peer.close()


async def test_enabling_again_brings_back_no_grant(broker: Broker) -> None:
    live = await live_session(broker)
    agent, rita, _, _ = await _controlling(broker, live)
    await broker.services.auth.set_disabled("rita", True, Actor.system())
    assert await rita.peer.closed() == CloseCode.ACCESS_REVOKED
    await _agent_saw_leave(agent, rita.slot)
    await broker.services.auth.set_disabled("rita", False, Actor.system())
    # Within the resume window, with a fresh login: a newcomer, asked for again from scratch.
    back = await join_viewer(broker, live, await broker.login("rita"))

    def view_requests() -> list[msg.ConsentRequest]:
        return [
            r
            for r in agent.peer.of(msg.ConsentRequest)
            if r.slot == back.slot and r.permission == "view"
        ]

    await agent.peer.wait(lambda: len(view_requests()) == 2)  # view is asked for again
    first, second = view_requests()
    assert first.request_id != second.request_id, "a new question, not the answered one"
    state = await back.peer.wait(lambda: back.peer.of(msg.State))
    assert state[-1].controller_slot is None and back.slot not in state[-1].viewing_slots
    room = _hub(broker).rooms[live.session_id]
    assert room.controller is None and room.frame_targets == ()
    await back.peer.close()
    await agent.peer.close()


async def test_a_disabled_engineer_away_in_his_resume_window_is_removed(broker: Broker) -> None:
    """Away (connection dropped, grants kept for the resume window) when disabled: enabled
    again and back within the window, he must not find his control waiting."""
    live = await live_session(broker)
    agent, rita, _, _ = await _controlling(broker, live)
    await rita.peer.ws.close(code=1006)  # the network drops: a resumable disconnect
    await _agent_saw_leave(agent, rita.slot)
    room = _hub(broker).rooms[live.session_id]
    away = room.state.participant(RITA)
    assert away is not None and not away.connected and away.grants
    await broker.services.auth.set_disabled("rita", True, Actor.system())
    assert room.state.participant(RITA) is None
    await broker.services.auth.set_disabled("rita", False, Actor.system())
    back = await join_viewer(broker, live, await broker.login("rita"))
    state = await back.peer.wait(lambda: back.peer.of(msg.State))
    assert state[-1].controller_slot is None and back.slot not in state[-1].viewing_slots
    await back.peer.close()
    await agent.peer.close()


async def test_disabling_over_the_cli_closes_the_running_brokers_sockets(
    broker: Broker, db_path: Path
) -> None:
    live = await live_session(broker)
    agent, rita, server_side, keys = await _controlling(broker, live)
    room = _hub(broker).rooms[live.session_id]
    await _stall(agent, rita, server_side)
    keys.start()
    done = await asyncio.to_thread(rsb, "users", "disable", "rita", "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    assert "within" in done.stdout
    # Another process: the broker is not told; it notices (RECONCILE_SECONDS), in a bound.
    await until(lambda: server_side.closed, "the broker closes rita", timeout=CLI_WAIT)
    assert room.controller is None
    cut = await keys.cut()  # sent after the broker marked her closed, on an open socket
    rita.peer.start()
    assert await rita.peer.closed() == CloseCode.ACCESS_REVOKED
    await _agent_saw_leave(agent, rita.slot)
    typed = _typed(agent, rita)
    assert not [k for k in typed if k >= cut], "keystrokes after the close reached the agent"
    assert room.state.participant(RITA) is None
    closed = _closed_rows(await audit_events(broker, live.session_id))
    assert [(e["actor"], e["details"]["reason"], e["details"]["code"]) for e in closed] == [
        ("system", "user_disabled", CloseCode.ACCESS_REVOKED)
    ]
    assert not agent.peer.ws.closed, "the session's own token is not the user's"
    await agent.peer.close()


async def test_revoking_a_key_closes_the_sockets_of_its_tokens_and_no_others(
    broker: Broker, db_path: Path
) -> None:
    old = await live_session(broker)  # rita's token and the session's tokens: the first key
    old_kid = _kid(old.agent_token)
    assert _kid(bearer_token(old.staff)) == old_kid
    old_agent = await ScriptedAgent.join(broker.client, old.agent_token, old.session_id)
    rita = await join_viewer(broker, old, old.staff)
    old_page = await connect(broker.client, "/ws/customer", old.customer_token)
    await old_page.wait(lambda: old_page.of(msg.Welcome))

    await broker.services.auth.rotate_keys(Actor.system())
    dana_headers = await broker.staff("dana", Role.ENGINEERING, "Dana Eng")  # the new key
    assert _kid(bearer_token(dana_headers)) != old_kid
    dana = await join_viewer(broker, old, dana_headers)
    new = await live_session(broker, "evan")
    assert _kid(new.agent_token) != old_kid
    new_agent = await ScriptedAgent.join(broker.client, new.agent_token, new.session_id)

    # A kid may start with "-": it goes after "--", as rsb keys revoke --help says.
    done = await asyncio.to_thread(rsb, "keys", "revoke", "--db", str(db_path), "--", old_kid)
    assert done.returncode == 0, done.stderr
    assert "new tokens are now signed" not in done.stdout, "a retired key: no rotation needed"
    for peer in (rita.peer, old_agent.peer, old_page):
        assert await _closed_within(peer, CLI_WAIT) == CloseCode.ACCESS_REVOKED
    # Tokens of the other key keep their sockets, in the same session and in another one.
    assert not dana.peer.ws.closed and not new_agent.peer.ws.closed
    await new_agent.peer.wait(lambda: new_agent.peer.of(msg.Welcome))
    assert (await broker.client.get("/api/v1/me", headers=dana_headers)).status == 200
    # The old key's tokens stop working for HTTP too, once this broker drops its keyring.
    assert (await broker.client.get("/api/v1/me", headers=old.staff)).status == 401
    late = await connect(broker.client, "/ws/agent", old.agent_token)
    assert await late.closed() == CloseCode.INVALID_TOKEN

    closed = _closed_rows(await audit_events(broker, old.session_id))
    assert sorted((e["details"]["kind"], e["details"]["reason"]) for e in closed) == [
        ("agent", "key_revoked"),
        ("customer", "key_revoked"),
        ("viewer", "key_revoked"),
    ]
    assert not _closed_rows(await audit_events(broker, new.session_id))
    for peer in (dana.peer, new_agent.peer):
        await peer.close()


async def test_revoking_the_signing_key_rotates_first_and_closes_at_once(broker: Broker) -> None:
    live = await live_session(broker)
    agent, rita, _, _ = await _controlling(broker, live)
    kid = _kid(bearer_token(live.staff))
    room = _hub(broker).rooms[live.session_id]
    server_agent = room.agent
    assert server_agent is not None
    new_kid = await broker.services.auth.revoke_key(kid, Actor("ada", "admin", "local"))
    assert new_kid is not None and new_kid != kid
    # In this process the hub is told: both sockets are closing by now, nothing routes.
    assert room.controller is None and server_agent.closed
    assert await rita.peer.closed() == CloseCode.ACCESS_REVOKED
    assert await agent.peer.closed() == CloseCode.ACCESS_REVOKED
    # The broker still signs: a new login works, with the new key.
    fresh = await broker.login("rita")
    assert _kid(bearer_token(fresh)) == new_kid
    assert (await broker.client.get("/api/v1/me", headers=fresh)).status == 200
    sec = await broker.staff("sam", Role.SECURITY)
    events = (await broker.call("GET", "/api/v1/audit", status=200, headers=sec))["events"]
    revoked = [e for e in events if e["action"] == "keys.revoked"]
    assert [e["details"] for e in revoked] == [{"kid": kid, "rotated_to": new_kid}]
    assert {e["details"]["kind"] for e in _closed_rows(events)} == {"viewer", "agent"}


async def test_a_revocation_during_the_token_check_still_refuses_the_connection(
    broker: Broker,
) -> None:
    """The gap between an endpoint's token check and its peer joining the room: ``revoke``
    cannot see the peer yet, so ``watch`` checks the revocations made since the check."""
    live = await live_session(broker)
    hub = _hub(broker)
    room = await hub.room_for(live.session_id)
    claims_kid = _kid(bearer_token(live.staff))
    credential = Credential(claims_kid, broker.clock() + timedelta(hours=1), "rita")

    def peer() -> Peer:
        return Peer(web.WebSocketResponse(), "viewer", "rita", 7, hub.limits, credential=credential)

    mark = hub.revocation_mark()  # the endpoint is checking rita's token...
    await broker.services.auth.set_disabled("rita", True, Actor.system())  # ...meanwhile
    with pytest.raises(AccessRevoked):
        hub.watch(room, peer(), mark)
    # A connection whose check came after the revocation was refused by the check itself;
    # here, with the mark taken later, watch has nothing against it.
    later = peer()
    hub.watch(room, later, hub.revocation_mark())
    hub.forget(later)


async def test_a_viewer_is_closed_when_its_short_lived_token_expires(broker: Broker) -> None:
    live = await live_session(broker)  # rita's token lives STAFF_TTL (module settings)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    rita = await join_viewer(broker, live, live.staff)
    await admit_viewer(broker, live, agent, rita)
    hub = _hub(broker)
    # Closed when the broker stops accepting the token: exp plus the clock-skew leeway.
    broker.clock.advance(seconds=(STAFF_TTL + LEEWAY).total_seconds() - 1)
    await hub.tick()
    assert not rita.peer.ws.closed
    assert (await broker.client.get("/api/v1/me", headers=live.staff)).status == 200
    broker.clock.advance(seconds=1)
    assert (await broker.client.get("/api/v1/me", headers=live.staff)).status == 401
    # The hub's own ticker closes it (nothing here calls tick).
    assert await rita.peer.closed() == CloseCode.TOKEN_EXPIRED
    await _agent_saw_leave(agent, rita.slot)
    room = hub.rooms[live.session_id]
    assert room.frame_targets == () and room.controller is None
    assert not agent.peer.ws.closed, "the session token lives longer"
    events = await audit_events(broker, live.session_id)
    closed = _closed_rows(events)
    assert [(e["actor"], e["details"]) for e in closed] == [
        (
            "system",
            {
                "kind": "viewer",
                "slot": rita.slot,
                "participant": "rita",
                "code": CloseCode.TOKEN_EXPIRED,
                "reason": "token_expired",
            },
        )
    ]
    # An expiry is a disconnect she may resume after logging in again, not a removal.
    assert "session.participant_disconnected" in [e["action"] for e in events]
    back = await join_viewer(broker, live, await broker.login("rita"))
    state = await back.peer.wait(
        lambda: [s for s in back.peer.of(msg.State) if back.slot in s.viewing_slots]
    )
    assert state
    await back.peer.close()
    await agent.peer.close()


async def test_agent_and_customer_sockets_close_at_their_session_tokens_expiry(
    broker: Broker,
) -> None:
    live = await live_session(broker)
    agent = await ScriptedAgent.join(broker.client, live.agent_token, live.session_id)
    page = await connect(broker.client, "/ws/customer", live.customer_token)
    await page.wait(lambda: page.of(msg.Welcome))
    ttl = broker.services.settings.session_token_ttl
    broker.clock.advance(seconds=(ttl + LEEWAY).total_seconds() - 1)
    await _hub(broker).tick()
    assert not agent.peer.ws.closed and not page.ws.closed
    broker.clock.advance(seconds=1)
    assert await agent.peer.closed() == CloseCode.TOKEN_EXPIRED
    assert await page.closed() == CloseCode.TOKEN_EXPIRED
    closed = _closed_rows(await audit_events(broker, live.session_id))
    assert sorted((e["details"]["kind"], e["details"]["reason"]) for e in closed) == [
        ("agent", "token_expired"),
        ("customer", "token_expired"),
    ]
    late = await connect(broker.client, "/ws/agent", live.agent_token)
    assert await late.closed() == CloseCode.INVALID_TOKEN
