"""Validation of controller input events (agent_client.inject) and backend key tables."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_client.inject import (
    MAX_SCROLL_STEPS,
    MAX_TEXT_LENGTH,
    MODIFIER_KEYS,
    SPECIAL_KEYS,
    AnyInputEvent,
    InputEvent,
    Key,
    PointerButton,
    PointerMove,
    Scroll,
    TypeText,
    check_key_name,
    deliver,
)
from agent_client.inject_pynput import _PYNPUT_KEYS
from agent_client.inject_x11 import char_to_keysym, key_name_to_keysym

SCREEN = (1280, 800)


def parse(data: object) -> object:
    return InputEvent.from_json(data, screen_size=SCREEN)


@pytest.mark.parametrize(
    ("data", "event"),
    [
        ({"type": "pointer_move", "x": 0, "y": 0}, PointerMove(0, 0)),
        ({"type": "pointer_move", "x": 1279, "y": 799}, PointerMove(1279, 799)),
        ({"type": "pointer_button", "button": 3, "pressed": False}, PointerButton(3, False)),
        ({"type": "scroll", "dx": -2, "dy": MAX_SCROLL_STEPS}, Scroll(-2, MAX_SCROLL_STEPS)),
        ({"type": "key", "key": "é", "pressed": True}, Key("é", True)),
        ({"type": "key", "key": " ", "pressed": True}, Key(" ", True)),
        ({"type": "key", "key": "Page_Down", "pressed": False}, Key("Page_Down", False)),
        ({"type": "key", "key": "Control", "pressed": True}, Key("Control", True)),
        ({"type": "type_text", "text": "ls -l\n\tcafé €"}, TypeText("ls -l\n\tcafé €")),
    ],
)
def test_valid_events_parse(data: dict[str, Any], event: object) -> None:
    assert parse(data) == event


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "JSON object"),
        ({"x": 1, "y": 2}, "unknown input event type None"),
        ({"type": "teleport"}, "unknown input event type 'teleport'"),
        ({"type": 5}, "unknown input event type 5"),
        ({"type": "pointer_move", "x": 1}, r"missing fields \['y'\]"),
        ({"type": "pointer_move", "x": 1, "y": 2, "z": 3}, r"unexpected fields \['z'\]"),
        ({"type": "pointer_move", "x": 1280, "y": 0}, r"x=1280 is outside 0\.\.1279"),
        ({"type": "pointer_move", "x": 0, "y": -1}, r"y=-1 is outside 0\.\.799"),
        ({"type": "pointer_move", "x": 1.5, "y": 0}, "x must be an integer"),
        ({"type": "pointer_move", "x": True, "y": 0}, "x must be an integer"),
        ({"type": "pointer_button", "button": 4, "pressed": True}, "button=4"),
        ({"type": "pointer_button", "button": 1, "pressed": 1}, "pressed must be true or false"),
        ({"type": "scroll", "dx": 0, "dy": MAX_SCROLL_STEPS + 1}, "dy=21"),
        ({"type": "key", "key": "ctrl", "pressed": True}, "key 'ctrl' is not allowed"),
        ({"type": "key", "key": "F13", "pressed": True}, "not allowed"),
        ({"type": "key", "key": "\x1b", "pressed": True}, "not allowed"),
        ({"type": "key", "key": "", "pressed": True}, "not allowed"),
        ({"type": "key", "key": 65, "pressed": True}, "key must be a string"),
        ({"type": "type_text", "text": ""}, "1..4096 characters"),
        ({"type": "type_text", "text": "x" * (MAX_TEXT_LENGTH + 1)}, "got 4097"),
        ({"type": "type_text", "text": "rm\x00"}, r"character 2 \('\\x00'\)"),
        ({"type": "type_text", "text": "a\rb"}, "not printable"),
        ({"type": "type_text", "text": ["a"]}, "text must be a string"),
    ],
)
def test_invalid_events_raise_clear_value_errors(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=4,
)
event_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["pointer_move", "pointer_button", "scroll", "key", "type_text", "?"]
        )
    },
    optional={name: json_values for name in ["x", "y", "button", "pressed", "dx", "dy", "key"]},
)


@given(event_like | json_values)
def test_from_json_raises_only_value_error(data: object) -> None:
    try:
        parse(data)
    except ValueError:
        pass


def test_every_allowed_named_key_is_accepted() -> None:
    names = SPECIAL_KEYS | MODIFIER_KEYS
    assert {f"F{n}" for n in range(1, 13)} <= names
    for name in names:
        assert check_key_name(name) == name


class Recorder:
    """An InputInjector that records calls, to check `deliver` routes each event."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def pointer_move(self, x: int, y: int) -> None:
        self.calls.append(("move", x, y))

    def pointer_button(self, button: int, pressed: bool) -> None:
        self.calls.append(("button", button, pressed))

    def scroll(self, dx: int, dy: int) -> None:
        self.calls.append(("scroll", dx, dy))

    def key(self, key: str, pressed: bool) -> None:
        self.calls.append(("key", key, pressed))

    def type_text(self, text: str) -> None:
        self.calls.append(("text", text))

    def close(self) -> None:
        self.calls.append(("close",))


def test_deliver_routes_each_event_type() -> None:
    rec = Recorder()
    events: list[AnyInputEvent] = [
        PointerMove(1, 2),
        PointerButton(1, True),
        Scroll(0, -1),
        Key("a", False),
        TypeText("hi"),
    ]
    for event in events:
        deliver(rec, event)
    assert rec.calls == [
        ("move", 1, 2),
        ("button", 1, True),
        ("scroll", 0, -1),
        ("key", "a", False),
        ("text", "hi"),
    ]


def test_backends_know_every_allowed_key_name() -> None:
    names = SPECIAL_KEYS | MODIFIER_KEYS
    assert set(_PYNPUT_KEYS) == names
    assert all(key_name_to_keysym(name) > 0 for name in names)


@pytest.mark.parametrize(
    ("ch", "keysym"),
    [("a", 0x61), ("~", 0x7E), ("é", 0xE9), ("ñ", 0xF1), ("€", 0x010020AC), ("ж", 0x01000436)],
)
def test_characters_map_to_latin1_or_unicode_keysyms(ch: str, keysym: int) -> None:
    assert char_to_keysym(ch) == keysym
    assert key_name_to_keysym(ch) == keysym


def test_key_name_to_keysym_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        key_name_to_keysym("Hyper")
