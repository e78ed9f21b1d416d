"""WebSocket endpoints of the relay: the agent, engineers' viewers and the customer page.

Each endpoint checks Origin before the upgrade (a hostile page must not even open a socket),
authenticates the token offered as a subprotocol, then pumps messages. Binary frames are routed
on their header alone (``peek_route``); the broker never decrypts. Any ``BrokerError`` closes
the socket with its close code: this wrapper is the WebSocket half of the error mapping.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import WSMessage, WSMsgType, web

from broker.api.principals import client_addr
from broker.appkeys import CLOCK_KEY, SERVICES_KEY, SETTINGS_KEY
from broker.audit.actions import AuditAction
from broker.audit.log import Actor
from broker.auth.bearer import token_from_subprotocols
from broker.auth.roles import Action
from broker.errors import (
    AgentOutdated,
    BadRequest,
    BrokerError,
    CloseCode,
    Forbidden,
    InvalidToken,
    InvalidTransition,
    OriginRejected,
    RateLimited,
    UnsupportedVersion,
    ViewOnly,
)
from broker.relay.agent_version import check_agent_version
from broker.relay.flow import TokenBucket
from broker.relay.hub import Hub
from broker.relay.limits import (
    DROP_AUDIT_SECONDS,
    MAX_KEY_ANNOUNCEMENTS,
    MAX_MESSAGE,
    TEXT_LIMIT,
    Limiter,
    ViewerAllowance,
)
from broker.relay.peer import Peer
from broker.relay.relaying import (
    Routed,
    ask_keyframe,
    deliver,
    route_from_agent,
    route_from_viewer,
    viewer_sender,
)
from broker.relay.room import Room
from broker.relay.routing import Sender, SlotIs, Verdict, route, slot_is
from broker.services import Services
from broker.sessions import machine as m
from broker.sessions.machine import ConsentSource
from broker.types import Level, ParticipantId, Permission, Role
from rsb_protocol import messages as msg
from rsb_protocol.close_codes import close_reason
from rsb_protocol.errors import ProtocolError
from rsb_protocol.framing import (
    AGENT_SLOT,
    CUSTOMER_SLOT,
    Envelope,
    FrameType,
    peek_route,
)
from rsb_protocol.handshake import SUBPROTOCOL

log = logging.getLogger(__name__)

HUB_KEY: web.AppKey[Hub] = web.AppKey("hub", Hub)

Pump = Callable[[web.Request, web.WebSocketResponse, Hub], Awaitable[None]]


def _check_origin(request: web.Request) -> None:
    """Browsers always send Origin on WebSockets; a foreign one is a hijacking attempt."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in request.app[SETTINGS_KEY].origins:
        raise OriginRejected(f"origin {origin!r} is not allowed")


def _offered(request: web.Request) -> list[str]:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    return [p for p in offered if p]


def _check_subprotocol(request: web.Request) -> None:
    """Refuse, before the upgrade, a client that does not speak ``rsb.v1``.

    aiohttp would otherwise upgrade anyway and log every offered subprotocol, the token
    included, at WARNING ("protocols don't overlap"). A request that is not a WebSocket
    handshake at all is left to aiohttp, which answers it itself.
    """
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return
    if SUBPROTOCOL not in _offered(request):
        raise UnsupportedVersion(f"offer the WebSocket subprotocol {SUBPROTOCOL}")


def _token(request: web.Request) -> str:
    token = token_from_subprotocols(_offered(request))
    if token is None:
        raise InvalidToken("offer the token as a WebSocket subprotocol rsb.token.<token>")
    return token


def websocket(kind: str, pump: Pump) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        _check_origin(request)  # before the upgrade: refused with a plain 403
        _check_subprotocol(request)  # likewise 400
        # aiohttp refuses a message of exactly max_msg_size bytes; MAX_MESSAGE is the largest
        # one allowed (docs/api.md).
        max_size = MAX_MESSAGE[kind] + 1
        # No aiohttp heartbeat and no autoping: the hub pings every connection itself and
        # the pumps answer pings and note pongs (``_keepalive``), which costs nothing per
        # message (``ticking`` in hub.py says why).
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,), compress=False, max_msg_size=max_size, autoping=False
        )
        await ws.prepare(request)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            # Small input events and cursor moves must not wait for Nagle's algorithm.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await pump(request, ws, request.app[HUB_KEY])
        except BrokerError as exc:
            await ws.close(code=exc.close_code, message=close_reason(exc.message))
        except ProtocolError as exc:
            await ws.close(code=CloseCode.BAD_MESSAGE, message=close_reason(str(exc)))
        except Exception:
            log.exception("%s connection failed", kind)
            await ws.close(code=1011, message=b"internal error")
        return ws

    handler.__name__ = f"{kind}_websocket"
    return handler


_KEEPALIVE = frozenset({WSMsgType.PING, WSMsgType.PONG})


async def _keepalive(peer: Peer, message: WSMessage, limiter: Limiter) -> None:
    """A ping is answered; a pong answers the hub's heartbeat. Both are charged like a text
    message: a flood of either is a flood."""
    limiter.check_text()
    if message.type is WSMsgType.PONG:
        peer.pong_received()
    else:
        await peer.ws.pong(message.data)


BinaryHandler = Callable[[bytes], Awaitable[None] | None]
TextHandler = Callable[[msg.Message], Awaitable[None]]


async def _pump(peer: Peer, on_binary: BinaryHandler, on_text: TextHandler) -> WSMessage:
    """The one receive loop of every endpoint; returns the message that ended it.

    Each message is charged to the connection's limits (over them: 4029), pings and pongs
    are answered here, binary messages go to ``on_binary`` (the frame path: it returns an
    awaitable only when something must be written first, such as a chat line's audit row)
    and JSON messages, parsed, to ``on_text``. Once the broker is closing the peer (access
    revoked, token expired, replaced), whatever it still sends is dropped until the close is
    done: input above all.
    """
    ws = peer.ws
    limiter = Limiter(peer.kind)
    while True:
        message = await ws.receive()
        kind = message.type
        if kind is WSMsgType.BINARY:
            limiter.check_binary()
            if peer.closing:
                continue
            pending = on_binary(message.data)
            if pending is not None:
                await pending
        elif kind is WSMsgType.TEXT:
            limiter.check_text()
            if peer.closing:
                continue
            await on_text(msg.parse_message(message.data, TEXT_LIMIT))
        elif kind in _KEEPALIVE:
            await _keepalive(peer, message, limiter)
        else:  # CLOSE, CLOSING, CLOSED or ERROR
            return message


async def _session_party(
    request: web.Request,
    ws: web.WebSocketResponse,
    hub: Hub,
    kind: Literal["agent", "customer"],
    slot: int,
) -> tuple[Room, Peer, Actor]:
    """Authenticate an agent's or customer page's session token and make its peer, tracked
    by the hub (expiry, revocation) before it joins the room."""
    mark = hub.revocation_mark()
    party = await request.app[SERVICES_KEY].auth.session_principal(_token(request), kind)
    room = await hub.room_for(party.session_id)
    peer = Peer(
        ws, kind, kind, slot, hub.limits, transport=request.transport, credential=party.credential
    )
    hub.watch(room, peer, mark)
    return room, peer, room.actor_for(peer, client_addr(request))


VIEW_ONLY_MESSAGE = (
    "Shared from the browser: view only \u2014 ask the customer to install the agent to let "
    "you control"
)


def _answer_error(peer: Peer, exc: BrokerError) -> None:
    peer.send(msg.ErrorMessage(exc.code, exc.message[:2000]))


# --- agent ----------------------------------------------------------------------------------


async def _agent_pump(request: web.Request, ws: web.WebSocketResponse, hub: Hub) -> None:
    services = request.app[SERVICES_KEY]
    room, peer, actor = await _session_party(request, ws, hub, "agent", AGENT_SLOT)
    await _refuse_outdated(request, hub, room, peer, actor)
    # Anyone holding the token can replace the connection: the row records who pushed it
    # out (written after the swap, so the old pump's cleanup sees it is no longer the agent).
    arrived = room.attach_agent(peer)
    peer.start()
    await room.carry_out(arrived, actor)
    await _count_agent(hub, room, actor)
    if not room.ended:
        await services.sessions.set_live_state(room.session_id, "active")

    async def text(item: msg.Message) -> None:
        await _agent_text(hub, room, peer, item, actor)

    try:
        await _pump(peer, functools.partial(route_from_agent, room), text)
    finally:
        hub.forget(peer)

        async def gone() -> None:
            if (left := room.detach_agent(peer)) is not None:
                await room.carry_out(left, actor)
                await _count_agent(hub, room, actor)
            await peer.stop()

        await hub.run_to_end(gone())


async def _refuse_outdated(
    request: web.Request, hub: Hub, room: Room, peer: Peer, actor: Actor
) -> None:
    """An agent older than ``min_agent_version`` never joins the room; the refusal is audited.

    Raises:
        AgentOutdated: closes the socket with 4105 and a message for the customer.
    """
    minimum = request.app[SETTINGS_KEY].min_agent_version
    user_agent = request.headers.get("User-Agent", "")
    try:
        check_agent_version(user_agent, minimum)
    except AgentOutdated as exc:
        hub.forget(peer)
        details = {
            "kind": "agent",
            "slot": AGENT_SLOT,
            "participant": "agent",
            "code": int(exc.close_code),
            "reason": exc.code,
            "version": str(exc.details.get("version", ""))[:40],
        }
        await room.audit(actor, AuditAction.RELAY_CLOSED, details)
        raise


async def _count_agent(hub: Hub, room: Room, actor: Actor) -> None:
    """Make the state machine count the agent as connected exactly when the room has one.

    Connections come and go while earlier ones are still being counted: an event may wait for
    the room's lock (another participant's audit write), and a newer connection arriving
    meanwhile saw the state from before it. So each side applies whatever brings the state
    in line with ``room.agent`` as it is after the wait, rather than what it saw before: a
    late ``AgentDisconnected`` of an old connection is followed by ``AgentConnected`` for the
    new one, instead of leaving a live agent counted as lost until its resume window ends
    the session.
    """
    for _ in range(4):  # a retry follows another connection's change; flapping is bounded
        if room.ended or room.state.agent_connected == (room.agent is not None):
            return
        event: m.Event = (
            m.AgentConnected(at=room.now())
            if room.agent is not None
            else m.AgentDisconnected(at=room.now())
        )
        with contextlib.suppress(InvalidTransition):  # another event got there first
            await hub.apply(room, event, actor)


async def _agent_text(hub: Hub, room: Room, peer: Peer, item: msg.Message, actor: Actor) -> None:
    if peer.closed:
        return  # closed by the broker (e.g. its token revoked): nothing it says counts now
    now = room.now()
    try:
        match item:
            case msg.PublicKeyAnnounce(slot=slot) if slot == AGENT_SLOT:
                await room.carry_out(room.announce_key(peer, item), actor)
            case msg.ConsentGrant(slot=slot, permission=permission):
                pid = _pid(room, slot)
                room.answer(slot, permission.value)
                await hub.apply(
                    room,
                    m.ConsentGranted(
                        at=now, pid=pid, permission=Permission(permission.value), by="agent"
                    ),
                    actor,
                )
            case msg.ConsentRefuse(slot=slot, permission=permission):
                pid = _pid(room, slot)
                room.answer(slot, permission.value)
                await hub.apply(
                    room,
                    m.ConsentRefused(
                        at=now, pid=pid, permission=Permission(permission.value), by="agent"
                    ),
                    actor,
                )
            case msg.ConsentRevoke(slot=slot, permission=permission):
                await _revoke(hub, room, slot, permission.value, actor, by="agent")
            case msg.Pause() | msg.Resume() | msg.End():
                await _customer_decision(hub, room, item, actor, by="agent")
            case msg.Hello():
                await room.carry_out(room.agent_hello(peer, item), actor)
            case msg.Ack() | msg.ErrorMessage() | msg.ChatMeta():
                pass  # chat is audited from the frames the relay forwards (_audit_chat)
            case _:
                raise BadRequest(f"the agent may not send {item.TYPE!r}")
    except InvalidTransition as exc:
        _answer_error(peer, exc)


def _pid(room: Room, slot: int) -> ParticipantId:
    pid = room.participant_at(slot)
    if pid is None:
        raise InvalidTransition(f"nobody holds slot {slot}")
    return pid


async def _revoke(
    hub: Hub, room: Room, slot: int, permission: str, actor: Actor, *, by: ConsentSource
) -> None:
    pid = room.participant_at(slot)
    if pid is None:
        return  # revocation always succeeds: nothing held, nothing to do
    room.answer(slot, permission)
    await hub.apply(
        room,
        m.ConsentRevoked(at=room.now(), pid=pid, permission=Permission(permission), by=by),
        actor,
    )


async def _customer_decision(
    hub: Hub, room: Room, item: msg.Message, actor: Actor, *, by: ConsentSource
) -> None:
    now = room.now()
    match item:
        case msg.Pause():
            await hub.apply(room, m.Paused(at=now), actor)
        case msg.Resume():
            await hub.apply(room, m.Resumed(at=now), actor)
        case msg.End(reason=reason):
            await hub.apply(room, m.Ended(at=now, by=by, reason=reason or f"ended by {by}"), actor)


# --- viewer ---------------------------------------------------------------------------------


async def _viewer_pump(request: web.Request, ws: web.WebSocketResponse, hub: Hub) -> None:
    services = request.app[SERVICES_KEY]
    clock = request.app[CLOCK_KEY]
    mark = hub.revocation_mark()
    principal = await services.auth.staff_principal(_token(request))
    services.auth.require(principal, Action.OBSERVE)
    room = await hub.room_for(request.match_info["session_id"])
    slot = room.slot_for(principal.name)
    peer = Peer(
        ws,
        "viewer",
        principal.name,
        slot,
        hub.limits,
        display_name=principal.display_name,
        level=principal.level,
        role=principal.role.value,
        transport=request.transport,
        credential=principal.credential,
    )
    hub.watch(room, peer, mark)
    actor = room.actor_for(peer, client_addr(request))
    arrived = room.attach_viewer(peer)
    peer.request_keyframe = lambda: ask_keyframe(room, slot)
    peer.start()
    await room.carry_out(arrived, actor)
    pid = ParticipantId(principal.name)
    known = room.state.participant(pid)
    if known is None:
        level = Level(principal.level) if principal.level else None
        # Coming on an invitation accepts it (audited) and hands the session over.
        invited = await services.sessions.accept_invitations(
            room.session_id, principal, client_addr(request)
        )
        joined = m.EngineerJoined(
            at=clock(),
            pid=pid,
            display_name=principal.display_name,
            level=level,
            invited=bool(invited),
        )
        await hub.apply(room, joined, actor)
    elif not known.connected:
        await hub.apply(room, m.EngineerReconnected(at=clock(), pid=pid), actor)
    else:
        room.reroute()
    leave_reason = "disconnected"
    last_drop_audit = 0.0
    dropped = 0
    try:
        allowance = ViewerAllowance()

        def frame(data: bytes) -> Awaitable[None] | None:
            nonlocal dropped, last_drop_audit
            routed = route_from_viewer(room, peer, data)
            if routed is Routed.CHAT:
                return _chat_from_viewer(room, peer, data, actor, allowance.chat)
            if routed is Routed.DROPPED:
                dropped += 1
                if time.monotonic() - last_drop_audit >= DROP_AUDIT_SECONDS:
                    last_drop_audit = time.monotonic()
                    count, dropped = dropped, 0
                    return room.audit(actor, AuditAction.RELAY_INPUT_DROPPED, {"count": count})
            return None

        async def text(item: msg.Message) -> None:
            await _viewer_text(hub, room, peer, item, actor, services, allowance)

        ended = await _pump(peer, frame, text)
        # Leaving is the console's own close frame with 1000. The broker's close (shutdown,
        # flow control: CLOSING), a dropped socket (CLOSED, which aiohttp also reports as
        # 1000) or any other code keeps the grants for the resume window.
        if ended.type is WSMsgType.CLOSE and ended.data == 1000:
            leave_reason = "left"
    finally:
        hub.forget(peer)
        if peer.closing_code == CloseCode.ACCESS_REVOKED:
            # Disabled, or the token's key revoked: the grants go now, not after the resume
            # window, so enabling the account again restores nothing.
            leave_reason = "access revoked"

        async def gone() -> None:
            if dropped:
                await room.audit(actor, AuditAction.RELAY_INPUT_DROPPED, {"count": dropped})
            if (left := room.detach_viewer(peer, leave_reason)) is not None:
                await room.carry_out(left, actor)
                if not room.ended:
                    event: m.Event = (
                        m.EngineerDisconnected(at=clock(), pid=pid)
                        if leave_reason == "disconnected"
                        else m.EngineerLeft(at=clock(), pid=pid)
                    )
                    try:
                        await hub.apply(room, event, actor)
                    except InvalidTransition:
                        room.reroute()
            await peer.stop()

        await hub.run_to_end(gone())


async def _chat_from_viewer(
    room: Room, peer: Peer, data: bytes, actor: Actor, bucket: TokenBucket
) -> None:
    """Audit a viewer's chat line from the frame itself, then send it to the agent."""
    if not bucket.allow(time.monotonic()):
        raise RateLimited("too many chat messages on this connection", retry_after=1.0)
    await _audit_chat(room, actor, peer.slot, data, MAX_MESSAGE["viewer"])
    # The audit awaited: the agent may have gone, or the viewer lost VIEW meanwhile.
    found = route(viewer_sender(room, peer), FrameType.CHAT, SlotIs.OWN)
    if found.verdict is Verdict.FORWARD:
        deliver(room, found, FrameType.CHAT, peer.slot, data)


async def _audit_chat(room: Room, actor: Actor, slot: int, data: bytes, max_size: int) -> None:
    """One ``session.chat`` row per line a person wrote, from the header the relay reads:
    what is audited is what is forwarded, never a client's own account of it."""
    envelope = Envelope.parse(data, max_size)
    meta = msg.ChatMeta(slot, envelope.epoch, envelope.seq, len(data))
    await room.audit(actor, AuditAction.SESSION_CHAT, meta.to_dict())


async def _viewer_text(
    hub: Hub,
    room: Room,
    peer: Peer,
    item: msg.Message,
    actor: Actor,
    services: Services,
    allowance: ViewerAllowance,
) -> None:
    pid = ParticipantId(peer.participant)
    try:
        match item:
            case msg.PublicKeyAnnounce(slot=slot) if slot == peer.slot:
                if item == allowance.announced:
                    # The same key again on this connection changes nothing. (A new connection
                    # announces it anew: the agent forgot it when the viewer went away.)
                    return
                allowance.announced = item
                allowance.key_announcements += 1
                if allowance.key_announcements > MAX_KEY_ANNOUNCEMENTS:
                    raise BadRequest("a viewer announces its key once per connection")
                await room.carry_out(room.announce_key(peer, item), actor)
            case msg.ControlRequest():
                services.auth.policy.require(Role(peer.role), Action.TAKE_CONTROL)
                if room.agent_source is msg.Source.BROWSER:
                    # A page cannot inject input: asking the customer would be a false promise.
                    raise ViewOnly(VIEW_ONLY_MESSAGE)
                if not allowance.control_requests.allow(time.monotonic()):
                    raise RateLimited("too many control requests; wait a little", 5.0)
                # Shown to the customer as is: one printable line, bounded (docs/security.md).
                why = msg.clean_text(item.reason, msg.CONSENT_REASON_MAX)
                asked = m.ConsentRequested(
                    at=room.now(), pid=pid, permission=Permission.CONTROL, reason=why
                )
                await hub.apply(room, asked, actor)
            case msg.Renew(token=token):
                renewed = await services.auth.staff_principal(token)
                if renewed.name != peer.participant or renewed.credential is None:
                    raise InvalidToken("a renewed token must name the same user")
                hub.renew(peer, renewed.credential)
            case msg.ControlRelease():
                await hub.apply(
                    room, m.Released(at=room.now(), pid=pid, permission=Permission.CONTROL), actor
                )
                if room.agent is not None:
                    room.agent.send(
                        msg.ConsentRevoke(
                            peer.slot, msg.Permission.CONTROL, "released by the engineer"
                        )
                    )
            case msg.Hello() | msg.Ack() | msg.ErrorMessage() | msg.ChatMeta():
                pass  # chat is audited from the frames the relay forwards (_audit_chat)
            case _:
                raise BadRequest(f"a viewer may not send {item.TYPE!r}")
    except (InvalidTransition, Forbidden, RateLimited) as exc:
        _answer_error(peer, exc)


# --- customer page --------------------------------------------------------------------------


async def _customer_pump(request: web.Request, ws: web.WebSocketResponse, hub: Hub) -> None:
    room, peer, actor = await _session_party(request, ws, hub, "customer", CUSTOMER_SLOT)
    greeting = room.attach_page(peer)
    peer.start()
    await room.carry_out(greeting, actor)
    try:

        def frame(data: bytes) -> Awaitable[None]:
            return _route_from_customer(room, peer, data, actor)

        async def text(item: msg.Message) -> None:
            await _customer_text(hub, room, peer, item, actor)

        await _pump(peer, frame, text)
    finally:
        hub.forget(peer)
        await room.carry_out(room.detach_page(peer), actor)
        await hub.run_to_end(peer.stop())


async def _customer_text(hub: Hub, room: Room, peer: Peer, item: msg.Message, actor: Actor) -> None:
    # A move the session rules refuse (e.g. a pause crossing one made at the agent) is answered
    # with an error message; the page keeps its socket, as a viewer does.
    try:
        match item:
            case msg.PublicKeyAnnounce(slot=slot) if slot == CUSTOMER_SLOT:
                await room.carry_out(room.customer_key(peer, item), actor)
            case msg.ConsentRevoke(slot=slot, permission=permission):
                await _revoke(hub, room, slot, permission.value, actor, by="customer")
                if room.agent is not None:
                    room.agent.send(item)
            case msg.Pause() | msg.Resume():
                # The session rules decide first: the agent never sees a move they refused.
                await _customer_decision(hub, room, item, actor, by="customer")
                if room.agent is not None:
                    room.agent.send(item)
            case msg.End():
                # The rules refuse an end only once the session has ended, and ending closes
                # every socket (queued messages first): so the agent hears it before that.
                if room.agent is not None:
                    room.agent.send(item)
                await _customer_decision(hub, room, item, actor, by="customer")
            case msg.Hello():
                pass
            case _:
                raise BadRequest(f"the customer page may not send {item.TYPE!r}")
    except (InvalidTransition, Forbidden) as exc:
        _answer_error(peer, exc)


async def _route_from_customer(room: Room, peer: Peer, data: bytes, actor: Actor) -> None:
    """Chat from the customer page, sealed to the agent's key: the page's only binary frame."""
    frame_type, slot = peek_route(data)
    sender = Sender.CHAT_PAGE if room.chat_page is peer else Sender.OTHER_PAGE
    found = route(sender, frame_type, slot_is(slot, CUSTOMER_SLOT))
    if found.verdict is Verdict.REFUSE:
        raise BadRequest(f"the customer page may not send {frame_type.name} frames")
    if found.verdict is not Verdict.FORWARD or room.agent is None:
        return
    await _audit_chat(room, actor, CUSTOMER_SLOT, data, MAX_MESSAGE["customer"])  # then sent
    if room.chat_page is peer:  # the audit awaited: another page may have taken the chat
        deliver(room, found, frame_type, slot, data)


def add_relay_routes(app: web.Application) -> None:
    app.router.add_get("/ws/agent", websocket("agent", _agent_pump))
    app.router.add_get("/ws/viewer/{session_id}", websocket("viewer", _viewer_pump))
    app.router.add_get("/ws/customer", websocket("customer", _customer_pump))
