"""Who may send which binary frame to whom: the relay's routing as one table (pure).

A frame is routed on its 18-byte header alone. What happens to it depends on three things the
relay knows without reading the payload: who sent it and what the customer has granted them
(``Sender``), the frame's type, and how the header's slot relates to the sender (``SlotIs``).
``ROUTES`` maps each such triple to a ``Route``; a triple the table does not name has no
route, and ``route`` answers ``NO_ROUTE`` for it: the frame is dropped and counted against its
sender. So a capability exists only where the table grants it: an observer has no INPUT route
at all, the way a read-only user of a remote desktop gateway has no input handler.

Forbidden kinds of frame (a viewer sending screen updates, the agent sending input) are not
merely unrouted but refused (``Verdict.REFUSE``): the sender's socket is closed with 4400.

The handlers (``broker/relay/handlers.py``) classify the sender, look the route up and deliver
to the route's target, through each target's ``FrameSink``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from typing import Protocol

from rsb_protocol.framing import BROADCAST_SLOT, CUSTOMER_SLOT, FrameType


class FrameSink(Protocol):
    """Where routing delivers a frame: a live WebSocket peer today; a recorder or a remote
    node implements the same members. ``offer`` may not wait: the frame path never awaits."""

    slot: int
    """The participant slot the sink receives for (keyframe requests name it)."""

    def offer(self, data: bytes, frame_type: FrameType) -> bool:
        """Take one binary frame; True when the sink dropped deltas and wants a keyframe."""
        ...

    @property
    def closed(self) -> bool:
        """No longer taking frames (closing, or closed)."""
        ...


class Sender(Enum):
    """The sender of a frame, with what the customer's consent currently gives it."""

    AGENT = auto()
    VIEWER_WAITING = auto()
    """A viewer the customer has not admitted, or refused, or while the session is paused."""
    VIEWER_WATCHING = auto()
    """A viewer that may receive frames (holds VIEW) but not send input."""
    VIEWER_CONTROLLING = auto()
    """The one viewer holding control."""
    CHAT_PAGE = auto()
    """The customer page whose key the agent holds (the latest to announce one)."""
    OTHER_PAGE = auto()
    """Any other customer page (a second tab)."""


class SlotIs(Enum):
    """How the header's slot relates to the sender."""

    OWN = auto()
    """The sender's own slot (for a customer page, ``CUSTOMER_SLOT``)."""
    BROADCAST = auto()
    CUSTOMER = auto()
    OTHER = auto()
    """Another participant's slot."""


class Target(Enum):
    VIEWERS = auto()
    """Every viewer that may receive frames now (``Room.frame_targets``)."""
    SLOT_VIEWER = auto()
    """The viewer the header's slot names, if it may receive frames now."""
    AGENT = auto()
    CHAT_PAGE = auto()


class Verdict(Enum):
    FORWARD = auto()
    DROP = auto()
    """Nothing to deliver, and nothing wrong (e.g. an ACK from a viewer not yet admitted)."""
    DROP_COUNTED = auto()
    """Not allowed for this sender now: dropped, counted and audited (``relay.input_dropped``)."""
    REFUSE = auto()
    """Never allowed from this kind of sender: the connection is closed (4400)."""


class Queue(Enum):
    """How the target's outgoing queue treats the frame when it is full (``relay/flow.py``)."""

    DELTA = auto()
    """Dropped, and the viewer skips to the next keyframe."""
    KEYFRAME = auto()
    """Replaces the queued deltas."""
    LATEST_WINS = auto()
    """At most one waits; a newer one replaces it."""
    DROPPABLE = auto()
    """Dropped once the queue is full, never a reason to close the target."""
    CONTROL = auto()
    """Never dropped; if even these pile up, the target is closed (4201)."""


@dataclass(frozen=True)
class Route:
    verdict: Verdict
    target: Target | None = None
    queue: Queue | None = None
    audit_chat: bool = False
    """Audited as ``session.chat`` from the header before it is delivered."""
    within_sent: bool = False
    """An ACK: forwarded only for what the agent sent (its epoch, no further than its seq)."""


NO_ROUTE = Route(Verdict.DROP_COUNTED)
_DROP = Route(Verdict.DROP)
_REFUSE = Route(Verdict.REFUSE)

_SCREEN = (FrameType.SCREEN_UPDATE, FrameType.KEYFRAME, FrameType.CURSOR)
_SCREEN_QUEUE = {
    FrameType.SCREEN_UPDATE: Queue.DELTA,
    FrameType.CURSOR: Queue.DELTA,
    FrameType.KEYFRAME: Queue.KEYFRAME,
}
_VIEWERS = (Sender.VIEWER_WAITING, Sender.VIEWER_WATCHING, Sender.VIEWER_CONTROLLING)
_SEEING = (Sender.VIEWER_WATCHING, Sender.VIEWER_CONTROLLING)
_PAGES = (Sender.CHAT_PAGE, Sender.OTHER_PAGE)
_SLOTS = tuple(SlotIs)


def _table() -> dict[tuple[Sender, FrameType, SlotIs], Route]:
    routes: dict[tuple[Sender, FrameType, SlotIs], Route] = {}
    agent = Sender.AGENT
    # The agent: screen frames to every admitted viewer, broadcast only; chat to the admitted
    # viewers (the customer's words under the group key), to the chat page or to one viewer;
    # key wraps to one admitted viewer. It never sends input, ACKs or keyframe requests.
    for frame_type in FrameType:
        for slot in _SLOTS:
            routes[agent, frame_type, slot] = _REFUSE
    for frame_type in _SCREEN:
        routes[agent, frame_type, SlotIs.BROADCAST] = Route(
            Verdict.FORWARD, Target.VIEWERS, _SCREEN_QUEUE[frame_type]
        )
    routes[agent, FrameType.CHAT, SlotIs.BROADCAST] = Route(
        Verdict.FORWARD, Target.VIEWERS, Queue.DROPPABLE
    )
    routes[agent, FrameType.CHAT, SlotIs.CUSTOMER] = Route(
        Verdict.FORWARD, Target.CHAT_PAGE, Queue.DROPPABLE
    )
    routes[agent, FrameType.CHAT, SlotIs.OTHER] = Route(
        Verdict.FORWARD, Target.SLOT_VIEWER, Queue.DROPPABLE
    )
    routes[agent, FrameType.KEY_WRAP, SlotIs.OTHER] = Route(
        Verdict.FORWARD, Target.SLOT_VIEWER, Queue.CONTROL
    )
    for slot in (SlotIs.BROADCAST, SlotIs.CUSTOMER):
        routes[agent, FrameType.KEY_WRAP, slot] = _DROP  # nobody holds those slots' keys
    # Viewers speak only as themselves: a frame under any other slot is dropped and counted,
    # whatever its type. As themselves, screen frames and key wraps are refused outright.
    for sender in _VIEWERS:
        for frame_type in FrameType:
            for slot in (SlotIs.BROADCAST, SlotIs.CUSTOMER, SlotIs.OTHER):
                routes[sender, frame_type, slot] = NO_ROUTE
            routes[sender, frame_type, SlotIs.OWN] = _REFUSE
        for frame_type in (FrameType.ACK, FrameType.KEYFRAME_REQUEST, FrameType.CHAT):
            routes[sender, frame_type, SlotIs.OWN] = _DROP  # until the customer admits it
        del routes[sender, FrameType.INPUT, SlotIs.OWN]  # no route: counted (NO_ROUTE)
    for sender in _SEEING:
        routes[sender, FrameType.ACK, SlotIs.OWN] = Route(
            Verdict.FORWARD, Target.AGENT, Queue.LATEST_WINS, within_sent=True
        )
        routes[sender, FrameType.KEYFRAME_REQUEST, SlotIs.OWN] = Route(
            Verdict.FORWARD, Target.AGENT, Queue.LATEST_WINS
        )
        routes[sender, FrameType.CHAT, SlotIs.OWN] = Route(
            Verdict.FORWARD, Target.AGENT, Queue.DROPPABLE, audit_chat=True
        )
    # Input: the controller's only, and only its. Nobody else has the route.
    routes[Sender.VIEWER_CONTROLLING, FrameType.INPUT, SlotIs.OWN] = Route(
        Verdict.FORWARD, Target.AGENT, Queue.DROPPABLE
    )
    # Customer pages send chat only, sealed to the agent, as the customer slot; only the chat
    # page's reaches it.
    for sender in _PAGES:
        for frame_type in FrameType:
            for slot in _SLOTS:
                routes[sender, frame_type, slot] = _REFUSE
        for slot in _SLOTS:
            routes[sender, FrameType.CHAT, slot] = _DROP
    routes[Sender.CHAT_PAGE, FrameType.CHAT, SlotIs.OWN] = Route(
        Verdict.FORWARD, Target.AGENT, Queue.DROPPABLE, audit_chat=True
    )
    return routes


ROUTES: dict[tuple[Sender, FrameType, SlotIs], Route] = _table()


def route(sender: Sender, frame_type: FrameType, slot: SlotIs) -> Route:
    """The route of a frame; ``NO_ROUTE`` (dropped and counted) where the table has none."""
    return ROUTES.get((sender, frame_type, slot), NO_ROUTE)


def slot_is(slot: int, own: int | None) -> SlotIs:
    """Classify a header's slot for a sender whose own slot is ``own`` (None: the agent)."""
    if slot == own:
        return SlotIs.OWN
    if slot == BROADCAST_SLOT:
        return SlotIs.BROADCAST
    if slot == CUSTOMER_SLOT:
        return SlotIs.CUSTOMER
    return SlotIs.OTHER
