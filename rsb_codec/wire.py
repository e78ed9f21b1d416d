"""The wire form of screen updates and cursor positions: parse, serialize, check (pure).

An update is a keyframe, a delta or a lossless refresh: a list of rectangles, each one image
(JPEG, PNG or WebP) at its place in the frame. Its serialized bytes are the payload the agent
encrypts; the viewer parses them after decryption, so `parse_update` checks every length and
rectangle before use. Cursor position travels in its own tiny message (`encode_cursor` /
`parse_cursor`). Images are not decoded here (`rsb_codec.decode` does that).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "WIRE_VERSION",
    "Codec",
    "Cursor",
    "Region",
    "Update",
    "UpdateKind",
    "encode_cursor",
    "parse_cursor",
    "parse_update",
    "serialize_update",
]

UpdateKind = Literal["keyframe", "delta", "refresh"]
Codec = Literal["jpeg", "png", "webp"]

WIRE_VERSION = 1
_KIND_IDS: dict[UpdateKind, int] = {"keyframe": 0, "delta": 1, "refresh": 2}
_CODEC_IDS: dict[Codec, int] = {"jpeg": 1, "png": 2, "webp": 3}
_KINDS_BY_ID = {v: k for k, v in _KIND_IDS.items()}
_CODECS_BY_ID = {v: k for k, v in _CODEC_IDS.items()}

# Update layout, all integers big-endian:
#   header  version u8 | kind u8 | width u16 | height u16 | count u16           (8 bytes)
#   region  x u16 | y u16 | w u16 | h u16 | codec u8 | length u32 | data[length] (13 + length)
_HEADER = struct.Struct("!BBHHH")
_REGION = struct.Struct("!HHHHBI")
# Cursor layout: x u16 | y u16 | flags u8 (bit 0: visible; other bits must be 0)  (5 bytes)
_CURSOR = struct.Struct("!HHB")
_CURSOR_VISIBLE = 0x01


@dataclass(frozen=True, slots=True)
class Region:
    """One encoded rectangle of the screen."""

    x: int
    y: int
    w: int
    h: int
    codec: Codec
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Update:
    """Everything a viewer needs to bring its copy of the screen up to date."""

    kind: UpdateKind
    width: int
    height: int
    regions: list[Region]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Pointer position in frame coordinates."""

    x: int
    y: int
    visible: bool


def serialize_update(update: Update) -> bytes:
    """Encode an update into the binary layout documented at `_HEADER`/`_REGION`.

    Raises:
        ValueError: A field does not fit its wire type (e.g. a coordinate above 65535).
    """
    u = update
    try:
        parts = [_HEADER.pack(WIRE_VERSION, _KIND_IDS[u.kind], u.width, u.height, len(u.regions))]
        for r in u.regions:
            parts.append(_REGION.pack(r.x, r.y, r.w, r.h, _CODEC_IDS[r.codec], len(r.data)))
            parts.append(r.data)
    except (struct.error, KeyError) as exc:
        raise ValueError(f"update does not fit the wire format: {exc}") from exc
    return b"".join(parts)


def parse_update(data: bytes) -> Update:
    """Decode and check an update produced by `serialize_update`.

    The input comes from the network (after decryption), so every length and rectangle is
    checked before use; image payloads are not decoded here.

    Raises:
        ValueError: Unknown version, kind or codec; truncated or trailing bytes; an empty
            rectangle or one outside the frame.
    """
    if len(data) < _HEADER.size:
        raise ValueError(f"update too short: {len(data)} bytes, header needs {_HEADER.size}")
    version, kind_id, width, height, count = _HEADER.unpack_from(data, 0)
    if version != WIRE_VERSION:
        raise ValueError(f"unsupported update version {version}")
    kind = _KINDS_BY_ID.get(kind_id)
    if kind is None:
        raise ValueError(f"unknown update kind {kind_id}")
    view = memoryview(data)
    offset = _HEADER.size
    regions = []
    for i in range(count):
        if len(data) - offset < _REGION.size:
            raise ValueError(f"region {i}: header truncated")
        x, y, w, h, codec_id, length = _REGION.unpack_from(data, offset)
        offset += _REGION.size
        codec = _CODECS_BY_ID.get(codec_id)
        if codec is None:
            raise ValueError(f"region {i}: unknown codec {codec_id}")
        if w == 0 or h == 0 or x + w > width or y + h > height:
            raise ValueError(f"region {i}: rectangle {x},{y} {w}x{h} outside {width}x{height}")
        if len(data) - offset < length:
            raise ValueError(f"region {i}: payload truncated ({length} bytes announced)")
        regions.append(Region(x, y, w, h, codec, bytes(view[offset : offset + length])))
        offset += length
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} trailing bytes after {count} regions")
    return Update(kind, width, height, regions)


def encode_cursor(x: int, y: int, visible: bool) -> bytes:
    """Encode a cursor position message (5 bytes).

    Raises:
        ValueError: A coordinate is outside 0..65535.
    """
    try:
        return _CURSOR.pack(x, y, _CURSOR_VISIBLE if visible else 0)
    except struct.error as exc:
        raise ValueError(f"cursor position {x},{y} does not fit the wire format") from exc


def parse_cursor(data: bytes) -> Cursor:
    """Decode a cursor position message.

    Raises:
        ValueError: Wrong length or unknown flag bits.
    """
    if len(data) != _CURSOR.size:
        raise ValueError(f"cursor message must be {_CURSOR.size} bytes, got {len(data)}")
    x, y, flags = _CURSOR.unpack(data)
    if flags & ~_CURSOR_VISIBLE:
        raise ValueError(f"unknown cursor flags {flags:#04x}")
    return Cursor(x, y, bool(flags & _CURSOR_VISIBLE))
