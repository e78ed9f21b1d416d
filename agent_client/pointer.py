"""Where the pointer is, so the cursor travels apart from the screen (DESIGN.md, "Screen stream").

Sending the cursor as its own tiny frame keeps it smooth when nothing else on the screen
changes, and keeps it out of the JPEG tiles. Probes are called from the capture thread only.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["PointerProbe", "PynputPointer", "X11Pointer"]


class PointerProbe(Protocol):
    """Reads the pointer position in screen (root window) coordinates."""

    def position(self) -> tuple[int, int] | None:
        """The current position, or None if it cannot be read right now."""
        ...

    def close(self) -> None:
        """Release the display connection. Safe to call twice."""
        ...


class X11Pointer:
    """Asks the X server with QueryPointer on the root window: one round trip, no grab.

    Args:
        display: Display name such as ":99"; None uses $DISPLAY.

    Raises:
        Xlib.error.DisplayError: The display cannot be opened.
    """

    def __init__(self, display: str | None = None) -> None:
        from Xlib.display import Display  # only on X11; the import fails elsewhere

        self._display: Any = Display(display)
        self._root: Any = self._display.screen().root
        self._closed = False

    def position(self) -> tuple[int, int] | None:
        """The pointer position, or None while it is on another screen of the display."""
        reply = self._root.query_pointer()
        if not reply.same_screen:
            return None
        return int(reply.root_x), int(reply.root_y)

    def close(self) -> None:
        """Close the display connection."""
        if not self._closed:
            self._closed = True
            self._display.close()


class PynputPointer:
    """Windows and macOS: pynput's mouse controller. Untested here (Linux-only test machines).

    Raises:
        ImportError: pynput is not installed.
    """

    def __init__(self) -> None:
        from pynput import mouse

        self._mouse: Any = mouse.Controller()

    def position(self) -> tuple[int, int] | None:
        """The pointer position."""
        x, y = self._mouse.position
        return int(x), int(y)

    def close(self) -> None:
        """Nothing to release."""
