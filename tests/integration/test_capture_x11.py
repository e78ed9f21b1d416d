"""ScreenSource and Encoder against a real X server (Xvfb started per test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from Xlib import X
from Xlib.display import Display

from agent_client.capture import ScreenSource
from agent_client.encoder import Encoder
from agent_client.tiles import changed_tiles
from rsb_codec.decode import apply_update

from .conftest import XvfbServer, wait_until

pytestmark = pytest.mark.display

ROOT_RGB = (0x33, 0x66, 0x99)
WINDOW_RGB = (0xE0, 0x20, 0x40)
WINDOW_RECT = (100, 50, 200, 120)  # x, y, w, h: deliberately not tile-aligned


@pytest.fixture
def xconn(xvfb: XvfbServer) -> Iterator[Display]:
    conn = Display(xvfb.display)
    try:
        yield conn
    finally:
        conn.close()


def pixel(rgb: tuple[int, int, int]) -> int:
    """The 24-bit TrueColor pixel value for an RGB triple."""
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


def bgr(frame: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    b, g, r = (int(v) for v in frame[y, x, :3])
    return r, g, b


def grab_until(source: ScreenSource, check: Callable[[np.ndarray], bool], what: str) -> np.ndarray:
    """Grab until `check` holds for a frame (the server paints asynchronously); return a copy."""

    def probe() -> np.ndarray | None:
        frame = source.grab()
        return frame.copy() if check(frame) else None

    return wait_until(probe, timeout=5, what=what)


def paint_root(conn: Display, rgb: tuple[int, int, int]) -> None:
    """What `xsetroot -solid` does: set the root background and repaint it."""
    root = conn.screen().root
    root.change_attributes(background_pixel=pixel(rgb))
    root.clear_area()
    conn.sync()


def map_window(conn: Display, rect: tuple[int, int, int, int], rgb: tuple[int, int, int]) -> None:
    x, y, w, h = rect
    window = conn.screen().root.create_window(
        x, y, w, h, 0, X.CopyFromParent, background_pixel=pixel(rgb), override_redirect=True
    )
    window.map()
    conn.sync()


def test_screen_source_sees_the_root_colour(xvfb: XvfbServer, xconn: Display) -> None:
    paint_root(xconn, ROOT_RGB)
    source = ScreenSource(xvfb.display)
    try:
        assert source.size == (xvfb.width, xvfb.height)
        assert source.origin == (0, 0)
        frame = grab_until(source, lambda f: bgr(f, 640, 400) == ROOT_RGB, "the root colour")
        assert frame.shape == (xvfb.height, xvfb.width, 4)
        assert np.all(frame[..., 2] == ROOT_RGB[0]) and np.all(frame[..., 0] == ROOT_RGB[2])
    finally:
        source.close()


def test_screen_source_reuses_one_buffer(xvfb: XvfbServer) -> None:
    source = ScreenSource(xvfb.display)
    try:
        assert source.grab() is source.grab()
    finally:
        source.close()
        source.close()  # closing twice is harmless


def test_a_mapped_window_changes_exactly_its_tiles(xvfb: XvfbServer, xconn: Display) -> None:
    paint_root(xconn, ROOT_RGB)
    source = ScreenSource(xvfb.display)
    try:
        before = grab_until(source, lambda f: bgr(f, 0, 0) == ROOT_RGB, "the root colour")
        map_window(xconn, WINDOW_RECT, WINDOW_RGB)
        x, y, w, h = WINDOW_RECT
        after = grab_until(
            source, lambda f: bgr(f, x + w - 1, y + h - 1) == WINDOW_RGB, "the window"
        )
        assert bgr(after, x - 1, y) == ROOT_RGB and bgr(after, x, y - 1) == ROOT_RGB
        expected = np.zeros((13, 20), dtype=np.bool_)
        expected[0:3, 1:5] = True  # rows 50..169 and columns 100..299 in 64 px tiles
        assert np.array_equal(changed_tiles(before, after), expected)
    finally:
        source.close()


def test_captured_updates_rebuild_the_screen(xvfb: XvfbServer, xconn: Display) -> None:
    paint_root(xconn, ROOT_RGB)
    source = ScreenSource(xvfb.display)
    encoder = Encoder(refresh_after=1)
    canvas = np.zeros((xvfb.height, xvfb.width, 4), dtype=np.uint8)
    try:
        first = encoder.encode(source.grab())
        assert first is not None and first.kind == "keyframe"
        apply_update(canvas, first)
        map_window(xconn, WINDOW_RECT, WINDOW_RGB)
        x, y, w, h = WINDOW_RECT
        frame = grab_until(source, lambda f: bgr(f, x, y) == WINDOW_RGB, "the window")
        delta = encoder.encode(frame)
        assert delta is not None and delta.kind == "delta"
        apply_update(canvas, delta)
        refresh = encoder.encode(source.grab())
        assert refresh is not None and refresh.kind == "refresh"
        apply_update(canvas, refresh)
        assert np.array_equal(canvas[..., :3], source.grab()[..., :3])
    finally:
        source.close()


def test_screen_source_rejects_a_missing_monitor(xvfb: XvfbServer) -> None:
    with pytest.raises(ValueError, match="monitor 7 does not exist"):
        ScreenSource(xvfb.display, monitor=7)
