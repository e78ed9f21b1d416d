"""The frame path: a binary frame's header, its route (``routing.ROUTES``) and its sinks.

Nothing here awaits, parses a payload or touches the database: each function reads the header
(``peek_route``), classifies the sender from the room's routing state (``frame_targets``,
``controller``, ``chat_page``), looks the route up and offers the frame to the target's
``FrameSink``. The endpoints (``handlers.py``) call these for every binary message, and audit
the chat lines the route marks before delivering them.
"""

from __future__ import annotations

from enum import Enum, auto

from broker.errors import BadRequest
from broker.relay.peer import Peer
from broker.relay.room import Room
from broker.relay.routing import Route, Sender, SlotIs, Target, Verdict, route, slot_is
from rsb_protocol.framing import (
    BROADCAST_SLOT,
    NO_FLAGS,
    FrameType,
    pack_header,
    peek_position,
    peek_route,
)


def keyframe_request(slot: int) -> bytes:
    return pack_header(FrameType.KEYFRAME_REQUEST, slot, 0, 0, NO_FLAGS)


def ask_keyframe(room: Room, slot: int) -> None:
    if room.agent is not None:
        room.agent.offer(keyframe_request(slot), FrameType.KEYFRAME_REQUEST)


def route_from_agent(room: Room, data: bytes) -> None:
    """Relay one binary frame from the agent, as ``routing.ROUTES`` says.

    Screen frames to the admitted viewers are nearly all the traffic, so their routes are
    looked up in ``_AGENT_BROADCAST`` (the same table rows) rather than classified: the table
    stays the only rule, this is how it is read fast.
    """
    frame_type, slot = peek_route(data)
    found = _AGENT_BROADCAST[frame_type] if slot == BROADCAST_SLOT else None
    if found is None:
        found = route(Sender.AGENT, frame_type, slot_is(slot, None))
    if found.verdict is not Verdict.FORWARD:
        if found.verdict is Verdict.REFUSE:
            raise BadRequest(f"the agent may not send {frame_type.name} frames to {slot:#06x}")
        return
    if found.target is Target.VIEWERS:
        _to_viewers(room, frame_type, data)
    else:
        deliver(room, found, frame_type, slot, data)


def _to_viewers(room: Room, frame_type: FrameType, data: bytes) -> None:
    """Offer a frame to every admitted viewer; one that dropped deltas gets a keyframe asked."""
    targets = room.frame_targets
    if targets and frame_type in _UPDATES:
        room.note_sent(peek_position(data))  # what the viewers' ACKs may cover
    for watcher in targets:
        if watcher.offer(data, frame_type):
            ask_keyframe(room, watcher.slot)


def deliver(room: Room, found: Route, frame_type: FrameType, slot: int, data: bytes) -> None:
    """Hand a routed frame to its target's sink(s); a target not here takes nothing."""
    target = found.target
    if target is Target.VIEWERS:
        _to_viewers(room, frame_type, data)
    elif target is Target.AGENT:
        if room.agent is not None:
            room.agent.offer(data, frame_type)
    elif target is Target.CHAT_PAGE:
        if room.chat_page is not None:
            room.chat_page.offer(data, frame_type)
    elif target is Target.SLOT_VIEWER:
        one = room.viewers.get(slot)
        if one is not None and one in room.frame_targets:
            one.offer(data, frame_type)


_UPDATES = frozenset({FrameType.SCREEN_UPDATE, FrameType.KEYFRAME})
_AGENT_BROADCAST = {t: route(Sender.AGENT, t, SlotIs.BROADCAST) for t in FrameType}
"""The agent's routes for frames to the broadcast slot, by type (rows of ``ROUTES``)."""


class Routed(Enum):
    SENT = auto()
    DROPPED = auto()
    """Not allowed for this viewer now: counted and audited (``relay.input_dropped``)."""
    CHAT = auto()
    """A chat line: audited, then sent, by ``_chat_from_viewer``."""


def viewer_sender(room: Room, peer: Peer) -> Sender:
    if room.controller is peer:
        return Sender.VIEWER_CONTROLLING
    return Sender.VIEWER_WATCHING if peer in room.frame_targets else Sender.VIEWER_WAITING


def route_from_viewer(room: Room, peer: Peer, data: bytes) -> Routed:
    """Relay one binary frame from a viewer, as ``routing.ROUTES`` says.

    A viewer the customer has not admitted (or refused) gets nothing through: no input, no
    ACK, no keyframe request, no chat. What an admitted one sends never costs the agent its
    connection (``flow``: latest-wins ACKs and keyframe requests, dropped input when full).
    """
    frame_type, slot = peek_route(data)
    found = route(viewer_sender(room, peer), frame_type, slot_is(slot, peer.slot))
    verdict = found.verdict
    if verdict is Verdict.DROP_COUNTED:
        return Routed.DROPPED
    if verdict is Verdict.REFUSE:
        raise BadRequest(f"a viewer may not send {frame_type.name} frames")
    if verdict is Verdict.DROP:
        return Routed.SENT
    if found.audit_chat:
        return Routed.CHAT
    if found.within_sent:
        epoch, seq = peek_position(data)
        peer.acked = seq
        if not room.accept_ack(epoch, seq):
            return Routed.SENT
    deliver(room, found, frame_type, slot, data)
    return Routed.SENT
