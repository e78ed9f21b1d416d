"""Picks this machine's capture source, input backend and pointer probe (`--source`, `--display`).

| platform | capture | input | pointer |
| --- | --- | --- | --- |
| Linux/X11 | mss (XShmGetImage) | XTEST (`inject_x11`) | QueryPointer (`pointer.X11Pointer`) |
| Windows, macOS | mss | pynput (`inject_pynput`), untested here | pynput, untested here |
| `--source test-pattern` | synthetic | XTEST with `--display`, else a log line | none |

Everything is opened on the capture thread (mss and Xlib connections stay on the thread that
made them). A machine where input cannot be injected still shares its screen: control is then
refused without asking the customer, because a yes that could not be honoured would mislead.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from agent_client.capture import FrameSource, ScreenSource, TestPatternSource
from agent_client.inject import InputInjector
from agent_client.pointer import PointerProbe

__all__ = ["Kit", "KitError", "open_kit"]

log = logging.getLogger(__name__)


class KitError(Exception):
    """The screen cannot be captured with these arguments."""


@dataclass
class Kit:
    """The platform pieces one agent run uses."""

    source: FrameSource
    injector_factory: Callable[[], InputInjector] | None
    pointer: PointerProbe | None
    origin: tuple[int, int]

    def close(self) -> None:
        """Release the source and the probe; call on the thread that opened them."""
        self.source.close()
        if self.pointer is not None:
            self.pointer.close()


def open_kit(source: str, display: str | None, executor: Executor) -> Kit:
    """Open the pieces for `--source` and `--display` on `executor`'s thread.

    Raises:
        KitError: The screen cannot be captured (no display, no such monitor).
    """
    return executor.submit(_open, source, display).result()


def _open(source: str, display: str | None) -> Kit:
    if source == "test-pattern":
        factory = _x11_injector(display) if display else _LogInjector
        return Kit(TestPatternSource(), factory, None, (0, 0))
    from mss.exception import ScreenShotError

    try:
        screen = ScreenSource(display)
    except (ScreenShotError, ValueError) as exc:
        raise KitError(f"cannot capture the screen ({exc}); is --display right?") from None
    if sys.platform.startswith("linux"):
        return Kit(screen, _x11_injector(display), _x11_pointer(display), screen.origin)
    return Kit(screen, _pynput_injector(), _pynput_pointer(), screen.origin)


def _x11_injector(display: str | None) -> Callable[[], InputInjector] | None:
    from Xlib.error import DisplayError

    from agent_client.inject_x11 import XTestInjector

    def factory() -> InputInjector:
        try:
            return XTestInjector(display)
        except DisplayError as exc:
            raise RuntimeError(f"cannot open display {display or '$DISPLAY'}: {exc}") from None

    try:
        factory().close()  # find out now, not when the customer has already said yes
    except RuntimeError as exc:
        log.warning("remote control is unavailable: %s", exc)
        return None
    return factory


def _x11_pointer(display: str | None) -> PointerProbe | None:
    from Xlib.error import DisplayError

    from agent_client.pointer import X11Pointer

    try:
        return X11Pointer(display)
    except DisplayError as exc:
        log.warning("the pointer will not be shown: %s", exc)
        return None


def _pynput_injector() -> Callable[[], InputInjector] | None:
    try:
        from agent_client.inject_pynput import PynputInjector

        PynputInjector()
    except ImportError as exc:
        log.warning("remote control is unavailable: %s", exc)
        return None
    return PynputInjector


def _pynput_pointer() -> PointerProbe | None:
    try:
        from agent_client.pointer import PynputPointer

        return PynputPointer()
    except ImportError:
        return None


class _LogInjector:
    """For `--source test-pattern` without a display: logs each event instead of injecting."""

    def pointer_move(self, x: int, y: int) -> None:
        self._log("pointer_move", x, y)

    def pointer_button(self, button: int, pressed: bool) -> None:
        self._log("pointer_button", button, pressed)

    def scroll(self, dx: int, dy: int) -> None:
        self._log("scroll", dx, dy)

    def key(self, key: str, pressed: bool) -> None:
        self._log("key", key, pressed)

    def type_text(self, text: str) -> None:
        self._log("type_text", len(text))

    def close(self) -> None:
        """Nothing to release."""

    @staticmethod
    def _log(*fields: object) -> None:
        log.warning("test-pattern input: %s", " ".join(map(str, fields)))
