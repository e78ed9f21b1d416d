"""Fuzz every consumer of binary frames: accepted, or refused with an error its docstring lists.

The allowed exceptions are read from each function's ``Raises:`` section, so the docs and the
code cannot drift apart (STYLE.md pattern 3).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsb_protocol import errors
from rsb_protocol.e2e import GroupReceiver, GroupSender, KeyPair, PairwiseChannel, Side
from rsb_protocol.framing import (
    CLEAR_TYPES,
    TAG_SIZE,
    WRAP_PAYLOAD_SIZE,
    Envelope,
    Flags,
    FrameType,
    peek_route,
)

FUZZ = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def documented_raises(func: Callable[..., Any]) -> tuple[type[Exception], ...]:
    """The exception classes named in a Google-style ``Raises:`` section."""
    doc = inspect.getdoc(func) or ""
    assert "Raises:" in doc, f"{func.__qualname__} documents no Raises section"
    names: list[str] = []
    for line in doc.split("Raises:", 1)[1].splitlines()[1:]:
        if line and not line.startswith(" "):
            break
        if line.startswith("    ") and not line.startswith("     "):
            names += [name.strip() for name in line.split(":", 1)[0].split(",")]
    classes = tuple(getattr(errors, name) for name in names)
    assert classes and all(issubclass(cls, errors.ProtocolError) for cls in classes)
    return classes


def holds_to_its_word(func: Callable[..., Any], *args: Any) -> None:
    allowed = documented_raises(getattr(func, "__func__", func))
    try:
        func(*args)
    except allowed:
        pass


def test_documented_raises_reads_combined_lines() -> None:
    assert documented_raises(PairwiseChannel.open)[:3] == (
        errors.MessageTooLarge,
        errors.MalformedFrame,
        errors.VersionMismatch,
    )


rsb_like = st.builds(
    lambda kind, rest: bytes([0xB1, kind]) + rest,
    st.sampled_from([int(t) for t in FrameType] + [0, 0x7F, 0xFF]),
    st.binary(max_size=120),
)
frames = st.one_of(st.binary(max_size=120), rsb_like)


@FUZZ
@given(frames, st.integers(min_value=0, max_value=200))
def test_parse_arbitrary_bytes(data: bytes, max_size: int) -> None:
    holds_to_its_word(Envelope.parse, data, max_size)


@FUZZ
@given(frames)
def test_peek_route_arbitrary_bytes(data: bytes) -> None:
    holds_to_its_word(peek_route, data)


def fit_payload(frame_type: FrameType, data: bytes) -> bytes:
    if frame_type in CLEAR_TYPES:
        return b""
    if frame_type is FrameType.KEY_WRAP:
        return data.ljust(WRAP_PAYLOAD_SIZE, b"\x00")[:WRAP_PAYLOAD_SIZE]
    return data.ljust(TAG_SIZE, b"\x00")


envelopes = st.builds(
    lambda frame_type, slot, epoch, seq, data, flags: Envelope(
        frame_type, slot, epoch, seq, fit_payload(frame_type, data), flags
    ),
    st.sampled_from(list(FrameType)),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=64),
    st.sampled_from([Flags(0), Flags.MORE, Flags.PAIRWISE, Flags.MORE | Flags.PAIRWISE]),
)


@FUZZ
@given(envelopes)
def test_valid_envelopes_round_trip_and_route(envelope: Envelope) -> None:
    wire = envelope.serialize()
    assert Envelope.parse(wire, len(wire)) == envelope
    assert peek_route(wire) == (envelope.frame_type, envelope.slot)


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int, extra: bytes) -> bytes:
    buffer = bytearray(data)
    for position, value in edits:
        buffer[position % len(buffer)] = value
    return bytes(buffer[: max(0, len(buffer) - cut)]) + extra


mutations = st.tuples(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
    st.integers(0, 20),
    st.binary(max_size=8),
)


@FUZZ
@given(envelopes, mutations)
def test_mutated_valid_frames(envelope: Envelope, mutation: tuple[Any, int, bytes]) -> None:
    holds_to_its_word(Envelope.parse, mutate(envelope.serialize(), *mutation), 1 << 16)


SID = "fuzz-session"
AGENT = KeyPair.generate()
VIEWER = KeyPair.generate()
SENDER = GroupSender(SID, [AGENT])
WRAP = SENDER.wrap_for(VIEWER.public, 1)
AT_VIEWER = PairwiseChannel(SID, VIEWER, AGENT.public, 1, Side.VIEWER)
GENUINE = [
    WRAP,
    SENDER.seal_update(FrameType.SCREEN_UPDATE, b"tiles"),
    SENDER.seal_update(FrameType.CHAT, b"hi", slot=1),
    AT_VIEWER.seal(FrameType.INPUT, b"key"),
]


def receiver() -> GroupReceiver:
    group = GroupReceiver(SID, VIEWER, 1, AGENT.public)
    group.install_wrapped_key(WRAP)
    return group


@FUZZ
@given(st.one_of(frames, st.sampled_from(GENUINE)), mutations)
def test_e2e_receivers_hold_to_their_word(data: bytes, mutation: tuple[Any, int, bytes]) -> None:
    data = mutate(data, *mutation) if data else data
    fresh = GroupReceiver(SID, VIEWER, 1, AGENT.public)
    holds_to_its_word(fresh.install_wrapped_key, data)
    holds_to_its_word(receiver().open, data)
    at_agent = PairwiseChannel(SID, AGENT, VIEWER.public, 1, Side.AGENT)
    holds_to_its_word(at_agent.open, data)
