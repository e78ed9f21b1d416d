"""What to do with a message for a viewer whose queue is filling up (pure).

A slow viewer must never set the pace for the others, and must never make the broker buffer
without bound. Screen deltas build on each other, so once one is dropped the viewer's picture
is stale until the next keyframe: the policy drops *all* queued deltas, asks the agent for a
keyframe, and skips deltas until it arrives (``Peer`` keeps skipping them until that keyframe
has left the queue, so a viewer that stays stalled costs one request, not one per refill).
Cursor positions are latest-wins. Key wraps and control messages are never dropped; if even
they overflow, the viewer is closed (flow-control close code) and may reconnect.

What one party sends must never cost another its connection, so the frames a viewer or the
customer page originates never count towards closing their recipient (usually the agent):
ACKs and keyframe requests are latest-wins (one waits, a newer one replaces it; an ACK is
cumulative and one keyframe answers every request), and input and chat are dropped once the
recipient's control queue is full.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from rsb_protocol.framing import FrameType


class Offer(Enum):
    ENQUEUE = auto()
    DROP = auto()
    FLUSH_DELTAS_AND_REQUEST_KEYFRAME = auto()
    REPLACE_WITH_KEYFRAME = auto()
    REPLACE_PENDING = auto()
    """Latest wins: keep at most one of this type waiting, the newest."""
    CLOSE = auto()


@dataclass(frozen=True)
class FlowLimits:
    max_queued_frames: int = 8
    max_queued_bytes: int = 4 * 1024 * 1024
    max_queued_control: int = 256
    heartbeat: float = 20.0
    """Seconds between WebSocket pings; a peer that does not answer within half of it is dropped."""


DELTAS = frozenset({FrameType.SCREEN_UPDATE, FrameType.CURSOR})
LATEST_WINS = frozenset({FrameType.ACK, FrameType.KEYFRAME_REQUEST})
DROPPED_WHEN_FULL = frozenset({FrameType.INPUT, FrameType.CHAT})


def decide(
    frame_type: FrameType | None,
    size: int,
    *,
    queued_frames: int,
    queued_bytes: int,
    queued_control: int,
    awaiting_keyframe: bool,
    limits: FlowLimits,
) -> Offer:
    """Decide the fate of one outgoing message for one viewer.

    Args:
        frame_type: the binary frame's type, or None for a JSON control message.
        size: the message's length in bytes.
        queued_frames: screen frames (deltas, keyframes, cursors) waiting in the queue.
        queued_bytes: bytes of those frames.
        queued_control: control messages and key wraps waiting.
        awaiting_keyframe: deltas were dropped for this viewer and no keyframe came since.
        limits: the queue bounds.
    """
    if frame_type in LATEST_WINS:
        return Offer.REPLACE_PENDING
    if frame_type is None or frame_type not in DELTAS and frame_type != FrameType.KEYFRAME:
        if queued_control < limits.max_queued_control:
            return Offer.ENQUEUE
        return Offer.DROP if frame_type in DROPPED_WHEN_FULL else Offer.CLOSE
    full = (
        queued_frames >= limits.max_queued_frames or queued_bytes + size > limits.max_queued_bytes
    )
    if frame_type == FrameType.KEYFRAME:
        # A keyframe makes every queued delta useless: send it instead of them.
        return Offer.REPLACE_WITH_KEYFRAME if full or awaiting_keyframe else Offer.ENQUEUE
    if awaiting_keyframe:
        return Offer.DROP
    if not full:
        return Offer.ENQUEUE
    if frame_type == FrameType.CURSOR:
        return Offer.DROP
    return Offer.FLUSH_DELTAS_AND_REQUEST_KEYFRAME


@dataclass
class TokenBucket:
    """Messages per second with a burst allowance, per connection (clock passed in)."""

    rate: float
    burst: float
    tokens: float = -1.0
    last: float = 0.0

    def allow(self, now: float, cost: float = 1.0) -> bool:
        if self.tokens < 0:
            self.tokens, self.last = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False
