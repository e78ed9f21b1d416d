"""Input injection on Windows and macOS through pynput, behind the `InputInjector` interface.

Untested here: the project's test machines run Linux/Xvfb only, and on X11 pynput types
ordinary characters with XSendEvent, which xterm and many applications ignore
(notes/feasibility.md, section 2), so `inject_x11.XTestInjector` is the Linux backend. pynput is
imported when an injector is built, not at module import, because importing it fails outright on
a Linux machine without $DISPLAY.
"""

from __future__ import annotations

from typing import Any

from agent_client.inject import check_key_name, check_text

# pynput.keyboard.Key attribute for each allowed special or modifier key name.
_PYNPUT_KEYS = {
    "Return": "enter",
    "BackSpace": "backspace",
    "Tab": "tab",
    "Escape": "esc",
    "Delete": "delete",
    "Home": "home",
    "End": "end",
    "Left": "left",
    "Right": "right",
    "Up": "up",
    "Down": "down",
    "Page_Up": "page_up",
    "Page_Down": "page_down",
    "Insert": "insert",
    "Shift": "shift",
    "Control": "ctrl",
    "Alt": "alt",
    "Super": "cmd",
    **{f"F{n}": f"f{n}" for n in range(1, 13)},
}
_BUTTONS = {1: "left", 2: "middle", 3: "right"}


class PynputInjector:
    """Replays input with pynput's mouse and keyboard controllers.

    Raises:
        ImportError: pynput is not installed (it comes with the agent extra off Linux).
    """

    def __init__(self) -> None:
        from pynput import keyboard, mouse

        self._keyboard_mod: Any = keyboard
        self._mouse_mod: Any = mouse
        self._kb: Any = keyboard.Controller()
        self._mouse: Any = mouse.Controller()
        self._held: set[str] = set()
        self._buttons: set[int] = set()

    def pointer_move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y)."""
        self._mouse.position = (x, y)

    def pointer_button(self, button: int, pressed: bool) -> None:
        """Press or release button 1, 2 or 3."""
        target = getattr(self._mouse_mod.Button, _BUTTONS[button])
        if pressed:
            self._mouse.press(target)
            self._buttons.add(button)
        else:
            self._mouse.release(target)
            self._buttons.discard(button)

    def scroll(self, dx: int, dy: int) -> None:
        """Scroll in wheel steps; pynput counts dy upwards, the wire format downwards."""
        self._mouse.scroll(dx, -dy)

    def key(self, key: str, pressed: bool) -> None:
        """Press or release a named key."""
        target = self._resolve(check_key_name(key))
        if pressed:
            self._kb.press(target)
            self._held.add(key)
        else:
            self._kb.release(target)
            self._held.discard(key)

    def type_text(self, text: str) -> None:
        """Type a string; pynput handles characters missing from the layout itself."""
        self._kb.type(check_text(text))

    def close(self) -> None:
        """Release whatever is still held."""
        for key in list(self._held):
            self.key(key, False)
        for button in list(self._buttons):
            self.pointer_button(button, False)

    def _resolve(self, name: str) -> Any:
        if len(name) == 1:
            return self._keyboard_mod.KeyCode.from_char(name)
        return getattr(self._keyboard_mod.Key, _PYNPUT_KEYS[name])
