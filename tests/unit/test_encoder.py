"""Encoder state machine, update wire format and the test-pattern source."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_client.capture import TestPatternSource
from agent_client.encoder import Encoder
from agent_client.tiles import Rect, changed_tiles, coverage
from rsb_codec.decode import apply_update, decode_region
from rsb_codec.wire import (
    Cursor,
    Region,
    Update,
    encode_cursor,
    parse_cursor,
    parse_update,
    serialize_update,
)

W, H = 640, 400


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio over the colour channels, in dB."""
    diff = a[..., :3].astype(np.float64) - b[..., :3].astype(np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def textlike_frame(seed: int = 0) -> np.ndarray:
    """A white page with dark glyph-sized blocks in lines: sharp edges, like a terminal."""
    rng = np.random.default_rng(seed)
    frame = np.full((H, W, 4), 255, dtype=np.uint8)
    for row in range(2, H // 16 - 2, 2):
        for col in range(4, W // 8 - 4):
            if rng.random() < 0.6:
                frame[row * 16 + 3 : row * 16 + 13, col * 8 + 1 : col * 8 + 6, :3] = 30
    return frame


def replay(updates: list[Update]) -> np.ndarray:
    """What a viewer would show after applying `updates` through the wire format."""
    canvas = np.zeros((H, W, 4), dtype=np.uint8)
    for update in updates:
        apply_update(canvas, parse_update(serialize_update(update)))
    return canvas


# --- encoder decisions --------------------------------------------------------------------


def test_first_frame_is_one_whole_frame_jpeg() -> None:
    frame = textlike_frame()
    update = Encoder().encode(frame)
    assert update is not None and update.kind == "keyframe"
    assert [(r.x, r.y, r.w, r.h, r.codec) for r in update.regions] == [(0, 0, W, H, "jpeg")]
    assert psnr(replay([update]), frame) >= 30


def test_unchanged_frame_yields_nothing() -> None:
    enc = Encoder()
    frame = textlike_frame()
    enc.encode(frame)
    assert enc.encode(frame.copy()) is None
    assert enc.idle_frames == 1


def test_small_change_is_a_delta_covering_exactly_the_changed_tiles() -> None:
    enc = Encoder()
    prev = textlike_frame(0)
    first = enc.encode(prev)
    cur = prev.copy()
    cur[130:150, 20:400, :3] = 90  # a typed line
    cur[300:310, 600:640, :3] = 0  # a clock in the corner
    update = enc.encode(cur)
    assert update is not None and update.kind == "delta"
    assert all(r.codec == "jpeg" for r in update.regions)
    got = coverage([Rect(r.x, r.y, r.w, r.h) for r in update.regions], W, H)
    assert np.array_equal(got, changed_tiles(prev, cur))
    assert first is not None
    assert psnr(replay([first, update]), cur) >= 30


def test_large_change_becomes_a_keyframe() -> None:
    enc = Encoder()
    enc.encode(textlike_frame(0))
    update = enc.encode(textlike_frame(1))  # every line differs: a scroll or a new window
    assert update is not None and update.kind == "keyframe"
    assert len(update.regions) == 1


def test_force_keyframe_and_size_change_resend_everything() -> None:
    enc = Encoder()
    frame = textlike_frame()
    enc.encode(frame)
    forced = enc.encode(frame, force_keyframe=True)
    assert forced is not None and forced.kind == "keyframe"
    resized = enc.encode(np.zeros((200, 300, 4), dtype=np.uint8))
    assert resized is not None and resized.kind == "keyframe" and resized.width == 300


def test_encoder_keeps_its_own_copy_of_a_reused_buffer() -> None:
    source = TestPatternSource(W, H)
    enc = Encoder()
    updates = [enc.encode(source.grab()) for _ in range(5)]
    assert [u.kind if u else None for u in updates] == ["keyframe"] + ["delta"] * 4
    expected = TestPatternSource(W, H)
    for _ in range(5):
        last = expected.grab()
    assert psnr(replay([u for u in updates if u]), last) >= 30


@pytest.mark.parametrize("lossless", ["webp", "png"])
def test_idle_refresh_is_lossless_and_one_shot(lossless: str) -> None:
    enc = Encoder(refresh_after=3, lossless=lossless)  # type: ignore[arg-type]
    frame = textlike_frame()
    updates = [enc.encode(frame)]
    cur = frame.copy()
    cur[40:60, 100:200, :3] = 0
    updates += [enc.encode(cur) for _ in range(6)]
    kinds = [u.kind if u else None for u in updates]
    assert kinds == ["keyframe", "delta", None, None, "refresh", None, None]
    refresh = updates[4]
    assert refresh is not None and {r.codec for r in refresh.regions} == {lossless}
    # The refresh resends all that went out lossy: here the keyframe, so the whole screen.
    assert np.array_equal(replay([u for u in updates if u])[..., :3], cur[..., :3])


def test_refresh_covers_only_tiles_sent_lossy_since_the_last_refresh() -> None:
    enc = Encoder(refresh_after=1)
    frame = textlike_frame()
    enc.encode(frame)
    assert enc.encode(frame) is not None  # the keyframe's refresh
    cur = frame.copy()
    cur[70:80, 70:80, :3] = 0
    enc.encode(cur)
    refresh = enc.encode(cur)
    assert refresh is not None and refresh.kind == "refresh"
    assert [(r.x, r.y, r.w, r.h) for r in refresh.regions] == [(64, 64, 64, 64)]


def test_refresh_disabled_with_zero() -> None:
    enc = Encoder(refresh_after=0)
    frame = textlike_frame()
    enc.encode(frame)
    assert all(enc.encode(frame) is None for _ in range(5))


def test_encoder_rejects_bad_settings_and_frames() -> None:
    with pytest.raises(ValueError, match="quality"):
        Encoder(quality=0)
    with pytest.raises(ValueError, match="lossless"):
        Encoder(lossless="gif")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(H, W, 4\) uint8"):
        Encoder().encode(np.zeros((10, 10, 3), dtype=np.uint8))


def test_reset_forces_a_keyframe() -> None:
    enc = Encoder()
    frame = textlike_frame()
    enc.encode(frame)
    enc.reset()
    update = enc.encode(frame)
    assert update is not None and update.kind == "keyframe"


# --- wire format --------------------------------------------------------------------------

regions = st.builds(
    lambda x, y, w, h, codec, data: Region(x, y, w, h, codec, data),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(1, 100),
    st.integers(1, 100),
    st.sampled_from(["jpeg", "png", "webp"]),
    st.binary(max_size=64),
)


@given(kind=st.sampled_from(["keyframe", "delta", "refresh"]), regs=st.lists(regions, max_size=8))
def test_update_round_trips(kind: str, regs: list[Region]) -> None:
    update = Update(kind, 200, 200, regs)  # type: ignore[arg-type]
    assert parse_update(serialize_update(update)) == update


def test_update_layout_is_documented_big_endian() -> None:
    update = Update("delta", 1280, 800, [Region(64, 128, 192, 64, "webp", b"abc")])
    assert (
        serialize_update(update)
        == (
            struct.pack("!BBHHH", 1, 1, 1280, 800, 1)
            + struct.pack("!HHHHBI", 64, 128, 192, 64, 3, 3)
        )
        + b"abc"
    )


GOOD = serialize_update(Update("delta", 100, 100, [Region(0, 0, 10, 10, "jpeg", b"xyz")]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD[:5], "too short"),
        (b"\x02" + GOOD[1:], "version"),
        (GOOD[:1] + b"\x07" + GOOD[2:], "kind"),
        (GOOD[:10], "header truncated"),
        (GOOD[:-1], "payload truncated"),
        (GOOD + b"!", "trailing"),
        (GOOD[:16] + b"\x09" + GOOD[17:], "codec"),
        (GOOD[:12] + b"\x00\x00" + GOOD[14:], "outside"),
        (GOOD[:8] + b"\x00\x5b" + GOOD[10:], "outside"),
    ],
)
def test_parse_update_rejects_malformed_input(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_update(data)


@given(st.binary(max_size=80))
def test_parse_update_raises_only_value_error(data: bytes) -> None:
    try:
        parse_update(data)
    except ValueError:
        pass


def test_serialize_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="wire format"):
        serialize_update(Update("delta", 70_000, 10, []))


def test_cursor_round_trip_and_errors() -> None:
    assert parse_cursor(encode_cursor(1279, 0, True)) == Cursor(1279, 0, True)
    assert parse_cursor(encode_cursor(5, 6, False)) == Cursor(5, 6, False)
    assert len(encode_cursor(1, 2, True)) == 5
    with pytest.raises(ValueError, match="5 bytes"):
        parse_cursor(b"\x00" * 4)
    with pytest.raises(ValueError, match="flags"):
        parse_cursor(b"\x00\x01\x00\x02\x03")
    with pytest.raises(ValueError, match="wire format"):
        encode_cursor(-1, 0, True)


def test_decode_region_reports_bad_images() -> None:
    with pytest.raises(ValueError, match="does not decode"):
        decode_region(Region(0, 0, 4, 4, "webp", b"not an image"))
    with pytest.raises(ValueError, match="does not decode"):
        decode_region(Region(0, 0, 4, 4, "jpeg", b"\xff\xd8 nope"))
    # A valid image that is larger than its region claims is refused before decoding.
    jpeg = Encoder().encode(np.zeros((8, 8, 4), dtype=np.uint8))
    assert jpeg is not None
    with pytest.raises(ValueError, match="image is 8x8, region is 4x4"):
        decode_region(Region(0, 0, 4, 4, "jpeg", jpeg.regions[0].data))
    refresh = Encoder(refresh_after=1, lossless="png")
    refresh.encode(np.zeros((8, 8, 4), dtype=np.uint8))
    png = refresh.encode(np.zeros((8, 8, 4), dtype=np.uint8))
    assert png is not None
    with pytest.raises(ValueError, match="image is 8x8, region is 8x4"):
        decode_region(Region(0, 0, 8, 4, "png", png.regions[0].data))
    canvas = np.zeros((10, 10, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="does not match"):
        apply_update(canvas, Update("delta", 20, 10, []))


# --- test pattern source ------------------------------------------------------------------


def test_test_pattern_is_deterministic_and_mostly_static() -> None:
    a, b = TestPatternSource(W, H), TestPatternSource(W, H)
    first = a.grab().copy()
    assert np.array_equal(first, b.grab())
    second = a.grab()
    assert a.frame_index == 2 and a.size == (W, H)
    changed = changed_tiles(first, second)
    assert 0 < changed.sum() < changed.size // 4  # only the box and the counter move
    a.close()


def test_test_pattern_rejects_tiny_sizes() -> None:
    with pytest.raises(ValueError, match="64x64"):
        TestPatternSource(32, 800)
