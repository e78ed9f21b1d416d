"""Binary envelope: byte layout, round trips, and each way a frame is refused."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from rsb_protocol.errors import MalformedFrame, MessageTooLarge, VersionMismatch
from rsb_protocol.framing import (
    BROADCAST_SLOT,
    CLEAR_TYPES,
    HEADER_SIZE,
    TAG_SIZE,
    WRAP_PAYLOAD_SIZE,
    Envelope,
    Flags,
    FrameType,
    pack_header,
    peek_route,
)

LIMIT = 1 << 20


def payload_for(frame_type: FrameType) -> bytes:
    if frame_type in CLEAR_TYPES:
        return b""
    if frame_type is FrameType.KEY_WRAP:
        return bytes(range(WRAP_PAYLOAD_SIZE))
    return b"\xaa" * (TAG_SIZE + 5)


def test_header_is_18_bytes_with_the_documented_layout() -> None:
    envelope = Envelope(FrameType.SCREEN_UPDATE, BROADCAST_SLOT, 7, 42, b"\x01" * 16, Flags.MORE)
    assert HEADER_SIZE == 18
    assert envelope.header_bytes == bytes.fromhex("b1 01 01 00 ffff 00000007 000000000000002a")
    assert envelope.serialize() == envelope.header_bytes + b"\x01" * 16


@pytest.mark.parametrize("frame_type", list(FrameType))
def test_every_type_round_trips(frame_type: FrameType) -> None:
    envelope = Envelope(frame_type, 3, 2**32 - 1, 2**64 - 1, payload_for(frame_type))
    assert Envelope.parse(envelope.serialize(), LIMIT) == envelope
    assert peek_route(envelope.serialize()) == (frame_type, 3)


def test_parse_accepts_buffers_and_copies_the_payload() -> None:
    wire = bytearray(Envelope(FrameType.CHAT, 1, 1, 1, b"\x05" * 20).serialize())
    envelope = Envelope.parse(memoryview(wire), LIMIT)
    wire[-1] = 0
    assert envelope.payload == b"\x05" * 20
    assert Envelope.parse(wire, LIMIT).payload[-1] == 0


def test_pack_header_equals_header_bytes() -> None:
    envelope = Envelope(FrameType.INPUT, 9, 3, 4, b"\x00" * 16, Flags.PAIRWISE)
    assert pack_header(FrameType.INPUT, 9, 3, 4, Flags.PAIRWISE) == envelope.header_bytes


def test_oversize_frame_is_refused_before_anything_else() -> None:
    wire = Envelope(FrameType.CHAT, 1, 1, 1, b"\x00" * 100).serialize()
    with pytest.raises(MessageTooLarge):
        Envelope.parse(wire, len(wire) - 1)
    assert Envelope.parse(wire, len(wire)).payload == b"\x00" * 100


@pytest.mark.parametrize("size", [0, 1, HEADER_SIZE - 1])
def test_short_frame_is_malformed(size: int) -> None:
    with pytest.raises(MalformedFrame, match="shorter than the header"):
        Envelope.parse(b"\xb1" * size, LIMIT)
    with pytest.raises(MalformedFrame):
        peek_route(b"\xb1" * size)


def test_other_version_raises_version_mismatch_with_both_versions() -> None:
    wire = bytearray(Envelope(FrameType.ACK, 1, 1, 1).serialize())
    wire[0] = 0xB2
    with pytest.raises(VersionMismatch) as caught:
        Envelope.parse(bytes(wire), LIMIT)
    assert (caught.value.received, caught.value.supported) == (2, 1)
    with pytest.raises(VersionMismatch):
        peek_route(bytes(wire))


@pytest.mark.parametrize("first", [0x00, 0x7B, 0xA1, 0xFF])
def test_foreign_first_byte_is_malformed_not_a_version(first: int) -> None:
    wire = bytes([first]) + Envelope(FrameType.ACK, 1, 1, 1).serialize()[1:]
    with pytest.raises(MalformedFrame, match="not an rsb frame"):
        Envelope.parse(wire, LIMIT)
    with pytest.raises(MalformedFrame):
        peek_route(wire)


def _patched(offset: int, value: int) -> bytes:
    wire = bytearray(Envelope(FrameType.ACK, 1, 1, 1).serialize())
    wire[offset] = value
    return bytes(wire)


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [(1, 0x00, "unknown frame type"), (1, 0x7F, "unknown frame type"), (2, 0x04, "unknown flags")]
    + [(2, 0x80, "unknown flags"), (3, 0x01, "reserved")],
)
def test_unknown_type_flag_or_reserved_byte_is_malformed(
    offset: int, value: int, reason: str
) -> None:
    with pytest.raises(MalformedFrame, match=reason):
        Envelope.parse(_patched(offset, value), LIMIT)


def test_peek_route_checks_type_but_leaves_flags_to_parse() -> None:
    with pytest.raises(MalformedFrame):
        peek_route(_patched(1, 0x7F))
    assert peek_route(_patched(2, 0x80)) == (FrameType.ACK, 1)


@pytest.mark.parametrize(
    ("frame_type", "size"),
    [(FrameType.ACK, 1), (FrameType.KEYFRAME_REQUEST, 16), (FrameType.SCREEN_UPDATE, 15)]
    + [(FrameType.INPUT, 0), (FrameType.KEY_WRAP, WRAP_PAYLOAD_SIZE - 1)]
    + [(FrameType.KEY_WRAP, WRAP_PAYLOAD_SIZE + 1)],
)
def test_payload_size_the_type_cannot_have_is_malformed(frame_type: FrameType, size: int) -> None:
    header = struct.pack(">BBBBHIQ", 0xB1, frame_type, 0, 0, 1, 1, 1)
    with pytest.raises(MalformedFrame):
        Envelope.parse(header + b"\x00" * size, LIMIT)
    with pytest.raises(MalformedFrame):
        Envelope(frame_type, 1, 1, 1, b"\x00" * size)


@pytest.mark.parametrize(
    ("slot", "epoch", "seq"),
    [(-1, 0, 0), (0x10000, 0, 0), (0, -1, 0), (0, 2**32, 0)] + [(0, 0, -1), (0, 0, 2**64)],
)
def test_out_of_range_fields_are_refused_at_construction(slot: int, epoch: int, seq: int) -> None:
    with pytest.raises(MalformedFrame, match="out of range"):
        Envelope(FrameType.ACK, slot, epoch, seq)


def test_unknown_flag_is_refused_at_construction() -> None:
    with pytest.raises(MalformedFrame, match="unknown flags"):
        pack_header(FrameType.ACK, 0, 0, 0, Flags(0x40))


def test_frame_type_families_and_clear_types() -> None:
    assert {t for t in FrameType if t >> 4 == 0} == {
        FrameType.SCREEN_UPDATE,
        FrameType.KEYFRAME,
        FrameType.CURSOR,
    }
    assert CLEAR_TYPES == {FrameType.ACK, FrameType.KEYFRAME_REQUEST}


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_framing_loads_no_crypto_and_the_package_no_server_stack() -> None:
    assert "cryptography" not in _modules_loaded_by("import rsb_protocol.framing")
    everything = _modules_loaded_by("import rsb_protocol.e2e, rsb_protocol.readback")
    assert not everything & {"aiohttp", "broker", "sqlite3", "aiosqlite", "pydantic", "asyncio"}
