"""The relay's flow policy (``broker/relay/flow.py``), without sockets: what happens to one
message for a viewer whose queue is filling up, and the per-connection token bucket."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.relay.flow import DELTAS, FlowLimits, Offer, TokenBucket, decide
from broker.relay.peer import binary_frame_header
from rsb_protocol.framing import FrameType

LIMITS = FlowLimits(max_queued_frames=4, max_queued_bytes=1000, max_queued_control=3)
NEVER_DROPPED = [None, FrameType.KEY_WRAP]


def _decide(
    frame_type: FrameType | None,
    size: int = 10,
    *,
    frames: int = 0,
    queued_bytes: int = 0,
    control: int = 0,
    awaiting: bool = False,
) -> Offer:
    return decide(
        frame_type,
        size,
        queued_frames=frames,
        queued_bytes=queued_bytes,
        queued_control=control,
        awaiting_keyframe=awaiting,
        limits=LIMITS,
    )


@pytest.mark.parametrize("frame_type", NEVER_DROPPED)
def test_control_messages_and_key_wraps_queue_until_the_control_bound_then_close(
    frame_type: FrameType | None,
) -> None:
    # Full frame queues and a pending keyframe do not matter: these are never dropped.
    busy = {"frames": 4, "queued_bytes": 1000, "awaiting": True}
    assert _decide(frame_type, control=2, **busy) is Offer.ENQUEUE  # type: ignore[arg-type]
    assert _decide(frame_type, control=3) is Offer.CLOSE
    assert _decide(frame_type, control=50) is Offer.CLOSE


@pytest.mark.parametrize("frame_type", [FrameType.ACK, FrameType.KEYFRAME_REQUEST])
def test_acks_and_keyframe_requests_are_latest_wins_and_never_close(frame_type: FrameType) -> None:
    # A viewer that floods the agent with these replaces its own waiting one: the agent's
    # connection never pays for it (issue 11: 300 ACKs closed the agent with 4201).
    for control in (0, 3, 50):
        assert _decide(frame_type, control=control) is Offer.REPLACE_PENDING


@pytest.mark.parametrize("frame_type", [FrameType.INPUT, FrameType.CHAT])
def test_input_and_chat_are_dropped_not_closed_once_the_control_queue_is_full(
    frame_type: FrameType,
) -> None:
    assert _decide(frame_type, control=2) is Offer.ENQUEUE
    assert _decide(frame_type, control=3) is Offer.DROP
    assert _decide(frame_type, control=50) is Offer.DROP


def test_a_delta_that_does_not_fit_flushes_the_deltas_and_asks_for_a_keyframe() -> None:
    assert _decide(FrameType.SCREEN_UPDATE, frames=3) is Offer.ENQUEUE
    assert _decide(FrameType.SCREEN_UPDATE, frames=4) is Offer.FLUSH_DELTAS_AND_REQUEST_KEYFRAME
    # The byte bound is inclusive: exactly full still fits, one byte more does not.
    assert _decide(FrameType.SCREEN_UPDATE, 100, queued_bytes=900) is Offer.ENQUEUE
    assert (
        _decide(FrameType.SCREEN_UPDATE, 101, queued_bytes=900)
        is Offer.FLUSH_DELTAS_AND_REQUEST_KEYFRAME
    )


def test_while_a_keyframe_is_awaited_deltas_are_dropped_even_with_room() -> None:
    assert _decide(FrameType.SCREEN_UPDATE, awaiting=True) is Offer.DROP
    assert _decide(FrameType.CURSOR, awaiting=True) is Offer.DROP


def test_a_cursor_is_latest_wins_it_is_dropped_rather_than_costing_a_keyframe() -> None:
    assert _decide(FrameType.CURSOR, frames=3) is Offer.ENQUEUE
    assert _decide(FrameType.CURSOR, frames=4) is Offer.DROP
    assert _decide(FrameType.CURSOR, 101, queued_bytes=900) is Offer.DROP


def test_a_keyframe_replaces_the_queue_when_full_or_awaited_and_is_never_dropped() -> None:
    assert _decide(FrameType.KEYFRAME, frames=3) is Offer.ENQUEUE
    assert _decide(FrameType.KEYFRAME, frames=4) is Offer.REPLACE_WITH_KEYFRAME
    assert _decide(FrameType.KEYFRAME, 5000) is Offer.REPLACE_WITH_KEYFRAME  # alone too big
    assert _decide(FrameType.KEYFRAME, awaiting=True) is Offer.REPLACE_WITH_KEYFRAME


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=5.0)  # times in quarter seconds: exact in binary
    assert [bucket.allow(100.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.allow(100.25)  # a quarter second at 4/s: one more token
    assert not bucket.allow(100.25)
    assert not bucket.allow(100.5, cost=2.0) and bucket.allow(100.75, cost=2.0)
    assert [bucket.allow(1000.0) for _ in range(6)] == [True] * 5 + [False]  # capped at burst


# --- a queue driven only by the policy never grows without bound --------------------------------


@dataclass
class _Queue:
    """The bookkeeping ``relay.peer.Peer`` does around ``decide``."""

    frames: list[int] = field(default_factory=list)
    control: int = 0
    awaiting: bool = False
    closed: bool = False

    def offer(self, frame_type: FrameType | None, size: int) -> None:
        verdict = decide(
            frame_type,
            size,
            queued_frames=len(self.frames),
            queued_bytes=sum(self.frames),
            queued_control=self.control,
            awaiting_keyframe=self.awaiting,
            limits=LIMITS,
        )
        if verdict is Offer.ENQUEUE:
            if frame_type in DELTAS or frame_type is FrameType.KEYFRAME:
                self.frames.append(size)
            else:
                self.control += 1
        elif verdict is Offer.CLOSE:
            self.closed = True
        elif verdict is Offer.FLUSH_DELTAS_AND_REQUEST_KEYFRAME:
            self.frames, self.awaiting = [], True
        elif verdict is Offer.REPLACE_WITH_KEYFRAME:
            self.frames, self.awaiting = [size], True

    def drain(self, count: int) -> None:
        """The slow reader takes ``count`` messages; a keyframe out ends the wait for one."""
        for _ in range(count):
            if self.frames:
                self.frames.pop(0)
                if not self.frames:
                    self.awaiting = False
            elif self.control:
                self.control -= 1


_MESSAGE_TYPES = st.sampled_from(
    [None, FrameType.SCREEN_UPDATE, FrameType.CURSOR, FrameType.KEYFRAME, FrameType.KEY_WRAP]
)
_STEPS = st.lists(
    st.one_of(
        st.tuples(_MESSAGE_TYPES, st.integers(min_value=1, max_value=1500)),
        st.integers(min_value=0, max_value=3),
    ),
    max_size=200,
)


@given(_STEPS)
def test_whatever_arrives_the_queue_stays_within_its_bounds(steps: list[object]) -> None:
    queue = _Queue()
    largest_keyframe = 0
    for step in steps:
        if queue.closed:
            break
        if isinstance(step, int):
            queue.drain(step)
            continue
        assert isinstance(step, tuple)
        frame_type, size = step
        if frame_type is FrameType.KEYFRAME:
            largest_keyframe = max(largest_keyframe, size)
        queue.offer(frame_type, size)
        assert len(queue.frames) <= LIMITS.max_queued_frames
        # A keyframe is never dropped, so one alone may exceed the byte bound; nothing else may.
        assert sum(queue.frames) <= max(LIMITS.max_queued_bytes, largest_keyframe)
        assert queue.control <= LIMITS.max_queued_control


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x82\x00"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65_535, b"\x82\x7e\xff\xff"),
        (65_536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (8 * 1024 * 1024, b"\x82\x7f\x00\x00\x00\x00\x00\x80\x00\x00"),
    ],
)
def test_a_binary_frame_header_uses_the_shortest_length_encoding(size: int, header: bytes) -> None:
    # RFC 6455 section 5.2: FIN + opcode 2, no mask bit from a server, then 7, 7+16 or 7+64 bits.
    assert binary_frame_header(size) == header
