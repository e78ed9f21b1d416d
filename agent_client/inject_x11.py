"""Input injection on X11 through the XTEST extension (python-xlib), in process.

XTEST events are indistinguishable from real hardware input, unlike XSendEvent, which xterm and
many other applications ignore (this is why pynput's keyboard fails on X11:
notes/feasibility.md, section 2). Each public call sends its requests and then syncs, so a
protocol error surfaces as an exception from the call that caused it.

Characters are typed by keysym. A keysym found at shift level 0 or 1 of the current keymap is
pressed there, with Shift pressed or released around it as needed. A keysym the layout lacks
('é', '€', 'ñ' on a US layout) is bound to a spare keycode with ChangeKeyboardMapping. The
binding is kept, not undone right after the key release: a client reads the new mapping only
when it handles the MappingNotify, which may be after an immediate restore had already been
processed by the server, and the character would be lost. Bindings are undone in `close()`, and a
spare keycode is reused (least recently used first) only `REBIND_SETTLE` seconds after its last
key event, which leaves a loaded client time to handle that event under the old binding.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from Xlib import XK, X
from Xlib.display import Display
from Xlib.ext import xtest

from agent_client.inject import TEXT_CONTROL_CHARS, check_key_name, check_text

# Wheel buttons by X11 convention: 4 up, 5 down, 6 left, 7 right.
_WHEEL_UP, _WHEEL_DOWN, _WHEEL_LEFT, _WHEEL_RIGHT = 4, 5, 6, 7
_MODIFIER_KEYSYMS = {"Shift": "Shift_L", "Control": "Control_L", "Alt": "Alt_L", "Super": "Super_L"}
_TEXT_KEYS = {"\n": "Return", "\t": "Tab"}
assert set(_TEXT_KEYS) == TEXT_CONTROL_CHARS
# Time for clients to handle the last key event of a spare keycode before it may be bound to another
# keysym; only reached when more distinct unmapped characters are typed than spare keycodes exist.
# 50 ms lost characters in xterm on a busy 2-core machine.
REBIND_SETTLE = 0.25


def char_to_keysym(ch: str) -> int:
    """Return the X keysym for one character.

    Latin-1 keysyms equal their code points; every other character uses the Unicode keysym
    range (0x01000000 + code point), which Xlib turns back into the character when it looks up
    the key.
    """
    cp = ord(ch)
    if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF:
        return cp
    return 0x01000000 | cp


def key_name_to_keysym(name: str) -> int:
    """Return the keysym for an allowed key name (see `agent_client.inject.check_key_name`).

    Raises:
        ValueError: The name is not allowed.
    """
    name = check_key_name(name)
    if len(name) == 1:
        return char_to_keysym(name)
    keysym: int = XK.string_to_keysym(_MODIFIER_KEYSYMS.get(name, name))
    if keysym == X.NoSymbol:
        raise ValueError(f"no X keysym for key {name!r}")
    return keysym


class XTestInjector:
    """Replays input on an X display with XTEST.

    Args:
        display: Display name such as ":99"; None uses $DISPLAY.

    Raises:
        Xlib.error.DisplayError: The display cannot be opened.
        RuntimeError: The X server lacks the XTEST extension.
    """

    def __init__(self, display: str | None = None) -> None:
        self._d = Display(display)
        if not self._d.has_extension("XTEST"):
            self._d.close()
            raise RuntimeError("the X server has no XTEST extension; input cannot be injected")
        self._errors: list[str] = []
        self._d.set_error_handler(lambda err, request: self._errors.append(str(err)))
        info = self._d.display.info
        self._min_keycode: int = info.min_keycode
        self._max_keycode: int = info.max_keycode
        self._keymap: dict[int, tuple[int, int]] = {}  # keysym -> (keycode, level 0 or 1)
        self._original: dict[int, tuple[int, ...]] = {}  # borrowed keycode -> its old keysyms
        self._bound: OrderedDict[int, int] = OrderedDict()  # keysym -> borrowed keycode, LRU
        self._bound_at: dict[int, float] = {}  # borrowed keycode -> last time it was rebound
        self._held: dict[str, int] = {}  # key name -> keycode pressed for it
        self._buttons: set[int] = set()
        self._shift_codes: list[int] = []
        self._spare = self._load_keymap()
        self._closed = False

    def pointer_move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y) on the root window."""
        xtest.fake_input(self._d, X.MotionNotify, x=x, y=y)
        self._sync()

    def pointer_button(self, button: int, pressed: bool) -> None:
        """Press or release button 1, 2 or 3."""
        if button not in (1, 2, 3):
            raise ValueError(f"button must be 1, 2 or 3, got {button}")
        xtest.fake_input(self._d, X.ButtonPress if pressed else X.ButtonRelease, button)
        if pressed:
            self._buttons.add(button)
        else:
            self._buttons.discard(button)
        self._sync()

    def scroll(self, dx: int, dy: int) -> None:
        """Click the wheel buttons: |dy| steps down (dy > 0) or up, then |dx| right or left."""
        for steps, negative, positive in (
            (dy, _WHEEL_UP, _WHEEL_DOWN),
            (dx, _WHEEL_LEFT, _WHEEL_RIGHT),
        ):
            button = positive if steps > 0 else negative
            for _ in range(abs(steps)):
                xtest.fake_input(self._d, X.ButtonPress, button)
                xtest.fake_input(self._d, X.ButtonRelease, button)
        self._sync()

    def key(self, key: str, pressed: bool) -> None:
        """Press or release a named key; a character key produces exactly that character."""
        keysym = key_name_to_keysym(key)
        if not pressed:
            keycode = self._held.pop(key, None)
            if keycode is None:
                keycode, _ = self._locate(keysym)
            xtest.fake_input(self._d, X.KeyRelease, keycode)
        elif len(key) == 1:
            keycode, level = self._locate(keysym)
            self._press_at_level(keycode, level, self._shift_keycodes_down())
            self._held[key] = keycode
        else:
            # Named keys ignore shift levels: pressing them as-is keeps Shift+Tab etc. intact.
            keycode, _ = self._locate(keysym)
            xtest.fake_input(self._d, X.KeyPress, keycode)
            self._held[key] = keycode
        self._sync()

    def type_text(self, text: str) -> None:
        """Type `text`; newline and tab become Return and Tab."""
        # Each character leaves Shift as it found it, so one look at Shift serves the string.
        shifts = self._shift_keycodes_down()
        for ch in check_text(text):
            if ch in _TEXT_KEYS:
                keycode, _ = self._locate(key_name_to_keysym(_TEXT_KEYS[ch]))
                xtest.fake_input(self._d, X.KeyPress, keycode)
            else:
                keycode, level = self._locate(char_to_keysym(ch))
                self._press_at_level(keycode, level, shifts)
            xtest.fake_input(self._d, X.KeyRelease, keycode)
        self._sync()

    def close(self) -> None:
        """Release held keys and buttons, undo keycode bindings, close the connection."""
        if self._closed:
            return
        self._closed = True
        try:
            for keycode in self._held.values():
                xtest.fake_input(self._d, X.KeyRelease, keycode)
            for button in self._buttons:
                xtest.fake_input(self._d, X.ButtonRelease, button)
            self._d.sync()
            if self._original:
                # Let clients handle the last key events under the binding they were typed with.
                time.sleep(REBIND_SETTLE)
                for keycode, syms in self._original.items():
                    self._d.change_keyboard_mapping(keycode, [syms])
                self._d.sync()
        finally:
            self._d.close()

    def _sync(self) -> None:
        self._d.sync()
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"X server rejected injected input: {'; '.join(errors)}")

    def _load_keymap(self) -> list[int]:
        """Read the keymap into `_keymap`; return the keycodes that carry no keysym at all."""
        count = self._max_keycode - self._min_keycode + 1
        rows = self._d.get_keyboard_mapping(self._min_keycode, count)
        self._shift_codes = [kc for kc in self._d.get_modifier_mapping()[X.ShiftMapIndex] if kc]
        self._keymap.clear()
        spare = []
        for offset, syms in enumerate(rows):
            keycode = self._min_keycode + offset
            if keycode in self._original:
                continue
            if not any(syms):
                spare.append(keycode)
            # Only levels 0 and 1 are reachable with Shift alone; AltGr levels are not used.
            for level, keysym in enumerate(syms[:2]):
                if keysym != X.NoSymbol:
                    self._keymap.setdefault(keysym, (keycode, level))
        return spare

    def _refresh_if_remapped(self) -> None:
        """Reload the keymap if any client (including us) changed it since the last look."""
        stale = False
        while self._d.pending_events():
            event = self._d.next_event()
            stale = stale or event.type == X.MappingNotify
        if stale:
            self._load_keymap()

    def _locate(self, keysym: int) -> tuple[int, int]:
        """Return (keycode, level) for a keysym, binding it to a spare keycode if need be."""
        self._refresh_if_remapped()
        if keysym in self._bound:
            self._bound.move_to_end(keysym)
            self._bound_at[self._bound[keysym]] = time.monotonic()
            return self._bound[keysym], 0
        found = self._keymap.get(keysym)
        if found is not None:
            return found
        return self._bind(keysym), 0

    def _bind(self, keysym: int) -> int:
        if self._spare:
            keycode = self._spare.pop()
        elif self._bound:
            _, keycode = self._bound.popitem(last=False)
            wait = self._bound_at[keycode] + REBIND_SETTLE - time.monotonic()
            if wait > 0:
                self._d.sync()
                time.sleep(wait)
        else:
            # A full keymap: borrow the highest keycode, restored in close().
            keycode = self._max_keycode
        if keycode not in self._original:
            self._original[keycode] = tuple(self._d.get_keyboard_mapping(keycode, 1)[0])
        width = len(self._original[keycode]) or 2
        # The keysym on every level, so the state of Shift or Caps Lock cannot change it.
        self._d.change_keyboard_mapping(keycode, [(keysym,) * width])
        self._bound[keysym] = keycode
        self._bound_at[keycode] = time.monotonic()
        return keycode

    def _shift_keycodes_down(self) -> list[int]:
        """Keycodes of Shift keys that are held right now (by anyone, not only by us)."""
        # One round trip; the server answers after the fake events sent before it.
        pressed = self._d.query_keymap()
        return [kc for kc in self._shift_codes if pressed[kc // 8] & (1 << (kc % 8))]

    def _press_at_level(self, keycode: int, level: int, shifts: list[int]) -> None:
        """Press `keycode` with Shift in the state that selects `level`, then restore Shift.

        `shifts` are the Shift keycodes held at this moment (`_shift_keycodes_down`).
        """
        if level == 1 and not shifts:
            shift, _ = self._locate(XK.string_to_keysym("Shift_L"))
            xtest.fake_input(self._d, X.KeyPress, shift)
            xtest.fake_input(self._d, X.KeyPress, keycode)
            xtest.fake_input(self._d, X.KeyRelease, shift)
        elif level == 0 and shifts:
            for kc in shifts:
                xtest.fake_input(self._d, X.KeyRelease, kc)
            xtest.fake_input(self._d, X.KeyPress, keycode)
            for kc in shifts:
                xtest.fake_input(self._d, X.KeyPress, kc)
        else:
            xtest.fake_input(self._d, X.KeyPress, keycode)
