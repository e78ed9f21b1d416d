"""Binary frame envelope: a fixed 18-byte header the broker routes on, then an opaque payload.

This is the only module of the package the broker imports. The broker reads the header to
route a frame (``peek_route``) and never looks inside the payload, which is AES-256-GCM
ciphertext for every frame type except the two clear flow-control types. There is no crypto,
no I/O and no logging here; ``rsb_protocol.e2e`` builds and opens the payloads.

Header, network byte order, ``struct`` format ``>BBBBHIQ``::

    offset  size  field      meaning
    0       1     magic_ver  high nibble 0xB (magic), low nibble protocol version (1) -> 0xB1
    1       1     type       FrameType
    2       1     flags      Flags; bits this version does not define are rejected
    3       1     reserved   must be 0
    4       2     slot       participant slot: 0 agent, 1..0xFFFC viewers, 0xFFFD the
                             customer page (chat only), 0xFFFE recording,
                             0xFFFF all viewers (sender slot on viewer frames, recipient slot
                             on agent frames)
    6       4     epoch      key epoch the payload is sealed under (0: no key, clear frames)
    10      8     seq        per (sender, epoch) sequence number; the low 8 bytes of the nonce
    18      n     payload    AEAD ciphertext and tag, or empty for clear frames

The whole header is the AEAD associated data, so changing any header byte in transit makes
the receiver's tag check fail (docs/protocol.md, "Replay rules").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import NoReturn

from rsb_protocol import PROTOCOL_VERSION
from rsb_protocol.errors import MalformedFrame, MessageTooLarge, VersionMismatch

__all__ = [
    "AGENT_SLOT",
    "peek_seq",
    "BROADCAST_SLOT",
    "CLEAR_TYPES",
    "CUSTOMER_SLOT",
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER_SIZE",
    "MAX_VIEWER_SLOT",
    "NO_FLAGS",
    "RECORDING_SLOT",
    "TAG_SIZE",
    "VERSION",
    "WRAP_PAYLOAD_SIZE",
    "Envelope",
    "Flags",
    "FrameType",
    "pack_header",
    "peek_position",
    "peek_route",
]

VERSION = PROTOCOL_VERSION
_MAGIC = 0xB0
_MAGIC_VERSION = _MAGIC | VERSION

_HEADER = struct.Struct(">BBBBHIQ")
_ROUTE = struct.Struct(">BBxxH")
HEADER_SIZE = _HEADER.size

AGENT_SLOT = 0
MAX_VIEWER_SLOT = 0xFFFD
CUSTOMER_SLOT = 0xFFFD
"""The customer's web page: chat only, pairwise with the agent; never a viewer's slot."""
RECORDING_SLOT = 0xFFFE
BROADCAST_SLOT = 0xFFFF

TAG_SIZE = 16
WRAP_PAYLOAD_SIZE = 12 + 32 + 4 + TAG_SIZE
"""A KEY_WRAP payload: 12-byte random nonce, then the sealed group key and nonce prefix."""

DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
"""A full 1280x800 keyframe in JPEG tiles fits with room to spare."""

_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class FrameType(IntEnum):
    """What a binary frame carries. The high nibble groups the families."""

    SCREEN_UPDATE = 0x01
    """Agent -> viewers: changed tiles of one screen update (group key)."""
    KEYFRAME = 0x02
    """Agent -> viewers: every tile; sent on join and on request (group key)."""
    CURSOR = 0x03
    """Agent -> viewers: pointer position and shape (group key)."""
    INPUT = 0x10
    """Controlling viewer -> agent: keyboard and pointer events (pairwise key)."""
    CHAT = 0x11
    """Chat text: viewer -> agent pairwise, or agent -> viewers under the group key."""
    KEY_WRAP = 0x20
    """Agent -> one viewer (or the recorder): the epoch's group key, wrapped to its key."""
    ACK = 0x30
    """Viewer -> broker/agent, clear: acknowledges ``seq`` of ``epoch``; empty payload."""
    KEYFRAME_REQUEST = 0x31
    """Viewer or broker -> agent, clear: please send a keyframe; empty payload."""


CLEAR_TYPES = frozenset({FrameType.ACK, FrameType.KEYFRAME_REQUEST})
"""Types whose payload is empty: the broker itself reads and sends them for flow control."""

_TYPE_BY_CODE: tuple[FrameType | None, ...] = tuple(
    FrameType(code) if code in FrameType._value2member_map_ else None for code in range(256)
)


class Flags(IntFlag):
    """Per-frame flags. A bit this version does not define makes the frame malformed."""

    MORE = 0x01
    """More frames of the same update follow; the viewer paints when one arrives without it."""
    PAIRWISE = 0x02
    """Sealed with a viewer's pairwise key, not the group key."""


NO_FLAGS = Flags(0)
_KNOWN_FLAGS = int(Flags.MORE | Flags.PAIRWISE)


def pack_header(frame_type: FrameType, slot: int, epoch: int, seq: int, flags: Flags) -> bytes:
    """Pack the 18-byte header, which is also the AEAD associated data.

    Args:
        frame_type: The frame type.
        slot: Participant slot, 0..0xFFFF.
        epoch: Key epoch, 0..2**32-1.
        seq: Sequence number, 0..2**64-1.
        flags: Flags defined by this version.

    Returns:
        The header bytes.

    Raises:
        MalformedFrame: A field is out of range or a flag is unknown.
    """
    if not 0 <= slot <= BROADCAST_SLOT:
        raise MalformedFrame(f"slot {slot} out of range")
    if not 0 <= epoch <= _U32_MAX:
        raise MalformedFrame(f"epoch {epoch} out of range")
    if not 0 <= seq <= _U64_MAX:
        raise MalformedFrame(f"sequence {seq} out of range")
    if int(flags) & ~_KNOWN_FLAGS:
        raise MalformedFrame(f"unknown flags 0x{int(flags):02x}")
    return _HEADER.pack(_MAGIC_VERSION, frame_type, flags, 0, slot, epoch, seq)


def _check_magic(magic_ver: int) -> NoReturn:
    if magic_ver & 0xF0 != _MAGIC:
        raise MalformedFrame(f"not an rsb frame (first byte 0x{magic_ver:02x})")
    raise VersionMismatch(magic_ver & 0x0F, VERSION)


def peek_route(data: bytes | bytearray | memoryview) -> tuple[FrameType, int]:
    """Read just what the broker routes on: one ``unpack_from``, no copy of the payload.

    Only the version and the type are checked here; flags, reserved byte and payload size are
    left to ``Envelope.parse`` at the receiver, which the broker does not need to run.

    Args:
        data: A whole binary WebSocket message.

    Returns:
        The frame type and the slot field.

    Raises:
        MalformedFrame: Shorter than a header, bad magic, or unknown frame type.
        VersionMismatch: The magic is ours but the version is not.
    """
    if len(data) < HEADER_SIZE:
        raise MalformedFrame(f"frame of {len(data)} bytes is shorter than the header")
    magic_ver, code, slot = _ROUTE.unpack_from(data)
    if magic_ver != _MAGIC_VERSION:
        _check_magic(magic_ver)
    frame_type = _TYPE_BY_CODE[code]
    if frame_type is None:
        raise MalformedFrame(f"unknown frame type 0x{code:02x}")
    return frame_type, slot


_SEQ = struct.Struct(">Q")
_SEQ_OFFSET = 10


def peek_seq(data: bytes | bytearray | memoryview) -> int:
    """The sequence field of a frame ``peek_route`` already accepted (for ACK credits).

    Raises:
        MalformedFrame: Shorter than a header.
    """
    if len(data) < HEADER_SIZE:
        raise MalformedFrame(f"frame of {len(data)} bytes is shorter than the header")
    seq: int = _SEQ.unpack_from(data, _SEQ_OFFSET)[0]
    return seq


_POSITION = struct.Struct(">IQ")
_EPOCH_OFFSET = 6


def peek_position(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """The (epoch, seq) fields of a frame ``peek_route`` already accepted (for ACK credits).

    Raises:
        MalformedFrame: Shorter than a header.
    """
    if len(data) < HEADER_SIZE:
        raise MalformedFrame(f"frame of {len(data)} bytes is shorter than the header")
    epoch, seq = _POSITION.unpack_from(data, _EPOCH_OFFSET)
    return epoch, seq


@dataclass(frozen=True, slots=True)
class Envelope:
    """One binary frame: routing header plus opaque payload. Validated at construction.

    Attributes:
        frame_type: What the frame carries.
        slot: Sender slot (viewer frames) or recipient slot (agent frames).
        epoch: Key epoch of the payload; 0 for clear frames without a key.
        seq: Sequence number within (sender, epoch).
        payload: Ciphertext with its 16-byte tag, or empty for ``CLEAR_TYPES``.
        flags: Flags defined by this version.
    """

    frame_type: FrameType
    slot: int
    epoch: int
    seq: int
    payload: bytes = b""
    flags: Flags = NO_FLAGS

    def __post_init__(self) -> None:
        pack_header(self.frame_type, self.slot, self.epoch, self.seq, self.flags)
        size = len(self.payload)
        if self.frame_type in CLEAR_TYPES:
            if size:
                raise MalformedFrame(f"{self.frame_type.name} carries a payload of {size} bytes")
        elif self.frame_type is FrameType.KEY_WRAP:
            if size != WRAP_PAYLOAD_SIZE:
                raise MalformedFrame(f"KEY_WRAP payload is {size} bytes, not {WRAP_PAYLOAD_SIZE}")
        elif size < TAG_SIZE:
            raise MalformedFrame(f"{self.frame_type.name} payload of {size} bytes has no tag")

    @property
    def header_bytes(self) -> bytes:
        """The 18 header bytes exactly as on the wire: the AEAD associated data."""
        return _HEADER.pack(
            _MAGIC_VERSION, self.frame_type, self.flags, 0, self.slot, self.epoch, self.seq
        )

    def serialize(self) -> bytes:
        """Return the frame as sent on the wire: header, then payload."""
        return self.header_bytes + self.payload

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, max_size: int) -> Envelope:
        """Parse and fully check one binary frame.

        Args:
            data: A whole binary WebSocket message (a byte-format buffer).
            max_size: Largest accepted length in bytes, header included.

        Returns:
            The envelope; its payload is a copy, so ``data`` may be reused.

        Raises:
            MessageTooLarge: ``data`` is longer than ``max_size``.
            MalformedFrame: Too short, bad magic, unknown type or flag, reserved byte set, or
                a payload size this type cannot have.
            VersionMismatch: The magic is ours but the version is not.
        """
        size = len(data)
        if size > max_size:
            raise MessageTooLarge(f"frame of {size} bytes exceeds the limit of {max_size}")
        if size < HEADER_SIZE:
            raise MalformedFrame(f"frame of {size} bytes is shorter than the header")
        magic_ver, code, flags, reserved, slot, epoch, seq = _HEADER.unpack_from(data)
        if magic_ver != _MAGIC_VERSION:
            _check_magic(magic_ver)
        frame_type = _TYPE_BY_CODE[code]
        if frame_type is None:
            raise MalformedFrame(f"unknown frame type 0x{code:02x}")
        if flags & ~_KNOWN_FLAGS:
            raise MalformedFrame(f"unknown flags 0x{flags:02x}")
        if reserved:
            raise MalformedFrame("reserved header byte is not zero")
        return cls(frame_type, slot, epoch, seq, bytes(data[HEADER_SIZE:]), Flags(flags))
