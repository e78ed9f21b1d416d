"""XTestInjector against a real X server: pointer, buttons, wheel and typing into an xterm.

Proof that input arrived comes from outside the injector: `xdotool getmouselocation`, events
received by a window of the test's own X connection, and the bytes `cat` wrote to a file from
the xterm's tty.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from Xlib import X
from Xlib.display import Display
from Xlib.protocol import rq

from agent_client.inject import InputEvent, deliver
from agent_client.inject_x11 import XTestInjector

from .conftest import XtermWindow, XvfbServer, wait_until

pytestmark = pytest.mark.display

INSIDE_XTERM = (100, 100)  # the xterm sits at +0+0; with no window manager, focus follows pointer


@pytest.fixture
def injector(xvfb: XvfbServer) -> Iterator[XTestInjector]:
    inj = XTestInjector(xvfb.display)
    try:
        yield inj
    finally:
        inj.close()


@pytest.fixture
def typing_target(
    xterm_cat: tuple[XtermWindow, Path], injector: XTestInjector
) -> Iterator[tuple[XTestInjector, Path]]:
    _, path = xterm_cat
    injector.pointer_move(*INSIDE_XTERM)
    yield injector, path


def wait_for_file(path: Path, expected: str) -> None:
    """Wait until FILE holds `expected`; on timeout, show the difference."""
    try:
        wait_until(
            lambda: path.exists() and path.read_text(encoding="utf-8") == expected,
            timeout=5,
            what=f"{path.name} to contain {expected!r}",
        )
    except TimeoutError:
        assert path.read_text(encoding="utf-8") == expected


def mouse_location(xvfb: XvfbServer) -> tuple[int, int]:
    fields = dict(part.split(":") for part in xvfb.run("xdotool", "getmouselocation").split())
    return int(fields["x"]), int(fields["y"])


def test_pointer_move_lands_where_asked(xvfb: XvfbServer, injector: XTestInjector) -> None:
    for x, y in [(0, 0), (333, 222), (1279, 799)]:
        injector.pointer_move(x, y)
        assert mouse_location(xvfb) == (x, y)


def _button_events(conn: Display, count: int) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []

    def collect() -> bool:
        while conn.pending_events():
            event = conn.next_event()
            if event.type in (X.ButtonPress, X.ButtonRelease):
                kind = "press" if event.type == X.ButtonPress else "release"
                seen.append((kind, event.detail))
        return len(seen) >= count

    wait_until(collect, timeout=5, what=f"{count} button events")
    return seen


@pytest.fixture
def button_window(xvfb: XvfbServer) -> Iterator[Display]:
    """A window at 200,200 (100x100) that reports button events to the test's connection."""
    conn = Display(xvfb.display)
    window = conn.screen().root.create_window(
        200,
        200,
        100,
        100,
        0,
        X.CopyFromParent,
        override_redirect=True,
        event_mask=X.ButtonPressMask | X.ButtonReleaseMask,
    )
    window.map()
    conn.sync()
    try:
        yield conn
    finally:
        conn.close()


def test_click_reaches_the_window_under_the_pointer(
    button_window: Display, injector: XTestInjector
) -> None:
    injector.pointer_move(250, 250)
    injector.pointer_button(1, True)
    pointer: rq.Struct = button_window.screen().root.query_pointer()
    assert pointer.mask & X.Button1Mask
    injector.pointer_button(1, False)
    injector.pointer_button(3, True)
    injector.pointer_button(3, False)
    events = _button_events(button_window, 4)
    assert events == [("press", 1), ("release", 1), ("press", 3), ("release", 3)]


def test_scroll_clicks_wheel_buttons(button_window: Display, injector: XTestInjector) -> None:
    injector.pointer_move(250, 250)
    injector.scroll(dx=1, dy=-2)
    injector.scroll(dx=-1, dy=1)
    presses = [b for kind, b in _button_events(button_window, 10) if kind == "press"]
    assert presses == [4, 4, 7, 5, 6]


def test_type_ascii_and_unmapped_characters(typing_target: tuple[XTestInjector, Path]) -> None:
    injector, path = typing_target
    text = "echo Hello, World! 0-9 ~`|\\\"'<>{}[]$%^&*()_+=\nœ café é€ñ ÉÑß\n"
    injector.type_text(text)
    wait_for_file(path, text)


def test_more_unmapped_characters_than_spare_keycodes(
    typing_target: tuple[XTestInjector, Path],
) -> None:
    injector, path = typing_target
    # 33 Cyrillic + 24 Greek letters outnumber Xvfb's 19 empty keycodes, forcing rebinding.
    text = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя αβγδεζηθικλμνξοπρστυφχψω\n"
    injector.type_text(text)
    wait_for_file(path, text)


def test_close_restores_the_keymap(
    xvfb: XvfbServer, typing_target: tuple[XTestInjector, Path]
) -> None:
    injector, path = typing_target
    conn = Display(xvfb.display)
    try:
        info = conn.display.info
        count = info.max_keycode - info.min_keycode + 1
        before = [tuple(r) for r in conn.get_keyboard_mapping(info.min_keycode, count)]
        injector.type_text("é€ñ\n")
        wait_for_file(path, "é€ñ\n")
        injector.close()
        after = [tuple(r) for r in conn.get_keyboard_mapping(info.min_keycode, count)]
        assert after == before
    finally:
        conn.close()


def test_backspace_and_return_keys(typing_target: tuple[XTestInjector, Path]) -> None:
    injector, path = typing_target
    for key in ["a", "b", "x", "BackSpace", "c", "Return"]:
        injector.key(key, True)
        injector.key(key, False)
    wait_for_file(path, "abc\n")


def test_modifiers(typing_target: tuple[XTestInjector, Path]) -> None:
    injector, path = typing_target

    def tap(key: str) -> None:
        injector.key(key, True)
        injector.key(key, False)

    # Shift held by the engineer: the key named "A" gives "A"; keysym "1" gives "1" (Shift is
    # lifted for it, because the viewer asked for the character, not the physical key).
    injector.key("Shift", True)
    tap("A")
    tap("1")
    injector.key("Shift", False)
    # "!" without Shift held: the injector presses Shift itself.
    tap("!")
    tap("Return")
    # Control-U erases the pending line in the tty, so "junk" never reaches the file.
    injector.type_text("junk")
    injector.key("Control", True)
    tap("u")
    injector.key("Control", False)
    injector.type_text("ok\n")
    wait_for_file(path, "A1!\nok\n")


def test_events_from_json_drive_the_injector(
    xvfb: XvfbServer, typing_target: tuple[XTestInjector, Path]
) -> None:
    injector, path = typing_target
    screen = (xvfb.width, xvfb.height)
    for data in [
        {"type": "pointer_move", "x": 120, "y": 90},
        {"type": "type_text", "text": "ñ"},
        {"type": "key", "key": "€", "pressed": True},
        {"type": "key", "key": "€", "pressed": False},
        {"type": "key", "key": "Return", "pressed": True},
        {"type": "key", "key": "Return", "pressed": False},
    ]:
        deliver(injector, InputEvent.from_json(data, screen_size=screen))
    wait_for_file(path, "ñ€\n")
    assert mouse_location(xvfb) == (120, 90)
