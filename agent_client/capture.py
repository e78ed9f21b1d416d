"""Frame sources for the agent: the real screen through mss, or a synthetic test pattern.

Both hand out (H, W, 4) uint8 BGRA arrays (the fourth byte is padding). A source owns one
preallocated buffer and refills it on every `grab()`, so the returned array is only valid until
the next call; the encoder keeps its own copy of what it needs. Reusing the buffer matters: a
fresh 4 MB array per frame page-faults on every frame and cost 5-7 ms in the feasibility
measurements, against about 0.4 ms for the grab itself.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Frame = NDArray[np.uint8]


class FrameSource(Protocol):
    """Anything the agent can capture frames from (the agent's `--source`)."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every frame this source returns."""
        ...

    def grab(self) -> Frame:
        """Capture one frame into the source's buffer and return that buffer, (H, W, 4) BGRA."""
        ...

    def close(self) -> None:
        """Release the display connection or other resources. Safe to call twice."""
        ...


class ScreenSource:
    """Captures a monitor with mss (XShmGetImage on X11, the fastest backend measured).

    Args:
        display: X11 display name such as ":99"; None uses $DISPLAY. Ignored off Linux, where
            mss takes no display argument.
        monitor: mss monitor index. 0 is the whole virtual screen, whose coordinates are the root
            window's, so they match what the input injector expects.

    Raises:
        mss.ScreenShotError: No display could be opened (e.g. $DISPLAY unset on X11).
        ValueError: The monitor index does not exist.
    """

    def __init__(self, display: str | None = None, *, monitor: int = 0) -> None:
        import mss  # imported here so the test-pattern source works without mss installed

        # mss.MSS, not the deprecated mss.mss() factory; passing display=None off Linux would
        # warn, so the keyword is only given when there is a display to name.
        self._sct = mss.MSS() if display is None else mss.MSS(display=display)
        monitors = self._sct.monitors
        if not 0 <= monitor < len(monitors):
            self._sct.close()
            raise ValueError(f"monitor {monitor} does not exist ({len(monitors)} known)")
        mon = monitors[monitor]
        self._region = {k: int(mon[k]) for k in ("left", "top", "width", "height")}
        self._buffer: Frame = np.zeros((mon["height"], mon["width"], 4), dtype=np.uint8)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the captured monitor."""
        return self._region["width"], self._region["height"]

    @property
    def origin(self) -> tuple[int, int]:
        """(left, top) of the monitor in virtual-screen coordinates."""
        return self._region["left"], self._region["top"]

    def grab(self) -> Frame:
        """Capture the monitor into the reused buffer and return it."""
        shot = self._sct.grab(self._region)
        np.copyto(self._buffer, np.frombuffer(shot.raw, dtype=np.uint8).reshape(self._buffer.shape))
        return self._buffer

    def close(self) -> None:
        """Close the display connection."""
        self._sct.close()


# Seven-segment digits: which of segments a..g (top, top-right, bottom-right, bottom,
# bottom-left, top-left, middle) are lit for 0-9.
_SEGMENTS = {
    0: "abcdef",
    1: "bc",
    2: "abdeg",
    3: "abcdg",
    4: "bcfg",
    5: "acdfg",
    6: "acdefg",
    7: "abc",
    8: "abcdefg",
    9: "abcdfg",
}
_BARS_BGR = [  # white, yellow, cyan, green, magenta, red, blue, black (as B, G, R)
    (235, 235, 235),
    (16, 235, 235),
    (235, 235, 16),
    (16, 235, 16),
    (235, 16, 235),
    (16, 16, 235),
    (235, 16, 16),
    (16, 16, 16),
]


class TestPatternSource:
    """A deterministic synthetic screen for demos and display-less tests.

    Colour bars, a box sliding back and forth across the middle band and a six-digit frame
    counter in the top-left corner. Frame n depends only on n, so two sources of the same size
    produce identical sequences. Between consecutive frames only the box and the counter change,
    which exercises the delta path the way a real desktop does.

    Args:
        width: Frame width in pixels (at least 64).
        height: Frame height in pixels (at least 64).
        box_step: Pixels the box moves per frame.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, width: int = 1280, height: int = 800, *, box_step: int = 8) -> None:
        if width < 64 or height < 64:
            raise ValueError(f"test pattern needs at least 64x64 pixels, got {width}x{height}")
        self._width, self._height = width, height
        self._box_step = box_step
        self._box = max(16, min(width, height) // 8)
        self._index = 0
        self._background = np.empty((height, width, 4), dtype=np.uint8)
        bar_edges = np.linspace(0, width, len(_BARS_BGR) + 1).astype(int)
        for (b, g, r), x0, x1 in zip(_BARS_BGR, bar_edges[:-1], bar_edges[1:], strict=True):
            self._background[:, x0:x1] = (b, g, r, 255)
        self._buffer: Frame = np.empty_like(self._background)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the pattern."""
        return self._width, self._height

    @property
    def frame_index(self) -> int:
        """Index of the frame the next `grab()` returns."""
        return self._index

    def grab(self) -> Frame:
        """Render the next frame into the reused buffer and return it."""
        np.copyto(self._buffer, self._background)
        travel = self._width - self._box
        # A triangle wave keeps the box on screen and makes the motion reverse at the edges.
        pos = (self._index * self._box_step) % (2 * travel) if travel > 0 else 0
        x = pos if pos <= travel else 2 * travel - pos
        y = (self._height - self._box) // 2
        self._buffer[y : y + self._box, x : x + self._box] = (40, 200, 255, 255)
        self._draw_counter(self._index % 1_000_000)
        self._index += 1
        return self._buffer

    def close(self) -> None:
        """Nothing to release; present for the FrameSource protocol."""

    def _draw_counter(self, value: int) -> None:
        unit = max(1, min(self._width, self._height) // 200)
        digit_w, digit_h, gap = 6 * unit, 10 * unit, 2 * unit
        text = f"{value:06d}"
        plate_w = len(text) * (digit_w + gap) + gap
        plate_h = digit_h + 2 * gap
        self._buffer[:plate_h, :plate_w] = (0, 0, 0, 255)
        for i, ch in enumerate(text):
            self._draw_digit(int(ch), gap + i * (digit_w + gap), gap, unit)

    def _draw_digit(self, digit: int, x: int, y: int, unit: int) -> None:
        w, h, t = 6 * unit, 10 * unit, unit
        half = h // 2
        boxes = {
            "a": (x, y, w, t),
            "b": (x + w - t, y, t, half),
            "c": (x + w - t, y + half, t, h - half),
            "d": (x, y + h - t, w, t),
            "e": (x, y + half, t, h - half),
            "f": (x, y, t, half),
            "g": (x, y + half - t // 2, w, t),
        }
        for seg in _SEGMENTS[digit]:
            sx, sy, sw, sh = boxes[seg]
            self._buffer[sy : sy + sh, sx : sx + sw] = (255, 255, 255, 255)
