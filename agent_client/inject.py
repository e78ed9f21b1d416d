"""Input events a controlling engineer may send, and the interface every injection backend has.

Events arrive as JSON objects from the one viewer that holds control (after decryption). They
are validated here, once, at the edge: coordinates must lie on the captured screen, key names
come from a fixed allow-list and text is bounded, so a backend never sees a value it has to
second-guess. Anything else raises `ValueError` with a message that names the field.

Wire shapes (`type` selects the event):

    {"type": "pointer_move", "x": 10, "y": 20}
    {"type": "pointer_button", "button": 1, "pressed": true}       # 1 left, 2 middle, 3 right
    {"type": "scroll", "dx": 0, "dy": 3}                            # wheel steps; dy > 0 is down
    {"type": "key", "key": "a", "pressed": true}                    # see `check_key_name`
    {"type": "type_text", "text": "hello\\n"}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

SPECIAL_KEYS = frozenset(
    {
        "Return",
        "BackSpace",
        "Tab",
        "Escape",
        "Delete",
        "Home",
        "End",
        "Left",
        "Right",
        "Up",
        "Down",
        "Page_Up",
        "Page_Down",
        "Insert",
        *(f"F{n}" for n in range(1, 13)),
    }
)
MODIFIER_KEYS = frozenset({"Shift", "Control", "Alt", "Super"})
BUTTONS = frozenset({1, 2, 3})
MAX_SCROLL_STEPS = 20
MAX_TEXT_LENGTH = 4096
# Text may carry line breaks and tabs (a pasted snippet); backends type them as Return and Tab.
TEXT_CONTROL_CHARS = frozenset("\n\t")


class InputInjector(Protocol):
    """A backend that replays validated input events on the customer's desktop.

    Every method takes effect before it returns (the backend flushes its connection), so the
    agent can report delivery and a test can check the result immediately after.
    """

    def pointer_move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y) in screen coordinates."""
        ...

    def pointer_button(self, button: int, pressed: bool) -> None:
        """Press or release mouse button 1 (left), 2 (middle) or 3 (right)."""
        ...

    def scroll(self, dx: int, dy: int) -> None:
        """Turn the wheel: dy > 0 scrolls down, dx > 0 scrolls right, in wheel steps."""
        ...

    def key(self, key: str, pressed: bool) -> None:
        """Press or release one key, named as `check_key_name` accepts."""
        ...

    def type_text(self, text: str) -> None:
        """Type a string character by character, producing exactly those characters."""
        ...

    def close(self) -> None:
        """Release held keys and buttons and undo any keymap change. Safe to call twice."""
        ...


def check_key_name(name: object) -> str:
    """Return `name` if it is an allowed key name.

    Allowed: one printable character (including space), the names in `SPECIAL_KEYS` and the
    modifiers in `MODIFIER_KEYS`.

    Raises:
        ValueError: Anything else, e.g. "ctrl", "\\x1b" or a two-character string.
    """
    if not isinstance(name, str):
        raise ValueError(f"key must be a string, got {type(name).__name__}")
    if (len(name) == 1 and name.isprintable()) or name in SPECIAL_KEYS or name in MODIFIER_KEYS:
        return name
    raise ValueError(
        f"key {name!r} is not allowed: use one printable character, a modifier "
        f"({', '.join(sorted(MODIFIER_KEYS))}) or a special key ({', '.join(sorted(SPECIAL_KEYS))})"
    )


def check_text(text: object) -> str:
    """Return `text` if it may be typed: 1..MAX_TEXT_LENGTH printable characters, newline, tab.

    Raises:
        ValueError: Not a string, empty, too long, or containing a control character.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if not 1 <= len(text) <= MAX_TEXT_LENGTH:
        raise ValueError(f"text must be 1..{MAX_TEXT_LENGTH} characters, got {len(text)}")
    for i, ch in enumerate(text):
        if not (ch.isprintable() or ch in TEXT_CONTROL_CHARS):
            raise ValueError(f"text character {i} ({ch!r}) is not printable")
    return text


def _int_field(data: Mapping[str, object], name: str, low: int, high: int) -> int:
    value = data[name]
    # bool is an int subclass; `true` as a coordinate is a client bug, not the number 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}")
    return value


def _bool_field(data: Mapping[str, object], name: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {type(value).__name__}")
    return value


class InputEvent:
    """Base of the input events; `from_json` is the only way in from the network."""

    __slots__ = ()
    TYPE: ClassVar[str]
    FIELDS: ClassVar[frozenset[str]]

    @staticmethod
    def from_json(data: object, *, screen_size: tuple[int, int]) -> AnyInputEvent:
        """Validate one decoded JSON object and build its event.

        Args:
            data: The decoded JSON value.
            screen_size: (width, height) of the captured screen; pointer coordinates must lie
                inside it.

        Returns:
            One of PointerMove, PointerButton, Scroll, Key, TypeText.

        Raises:
            ValueError: Not an object, unknown `type`, missing or extra fields, or a field
                with the wrong type or out of range.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"input event must be a JSON object, got {type(data).__name__}")
        kind = data.get("type")
        cls = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValueError(f"unknown input event type {kind!r}; expected one of {_TYPE_NAMES}")
        fields = set(data) - {"type"}
        if fields != cls.FIELDS:
            missing, extra = cls.FIELDS - fields, fields - cls.FIELDS
            raise ValueError(
                f"{kind} event: missing fields {sorted(missing)}, unexpected fields "
                f"{sorted(map(str, extra))}"
            )
        width, height = screen_size
        if cls is PointerMove:
            return PointerMove(
                _int_field(data, "x", 0, width - 1), _int_field(data, "y", 0, height - 1)
            )
        if cls is PointerButton:
            button = _int_field(data, "button", min(BUTTONS), max(BUTTONS))
            return PointerButton(button, _bool_field(data, "pressed"))
        if cls is Scroll:
            steps = MAX_SCROLL_STEPS
            return Scroll(
                _int_field(data, "dx", -steps, steps), _int_field(data, "dy", -steps, steps)
            )
        if cls is Key:
            return Key(check_key_name(data["key"]), _bool_field(data, "pressed"))
        return TypeText(check_text(data["text"]))


@dataclass(frozen=True, slots=True)
class PointerMove(InputEvent):
    """Move the pointer to absolute screen coordinates."""

    TYPE: ClassVar[str] = "pointer_move"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"x", "y"})
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class PointerButton(InputEvent):
    """Press or release a mouse button."""

    TYPE: ClassVar[str] = "pointer_button"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"button", "pressed"})
    button: int
    pressed: bool


@dataclass(frozen=True, slots=True)
class Scroll(InputEvent):
    """Wheel steps; dy > 0 scrolls down and dx > 0 scrolls right."""

    TYPE: ClassVar[str] = "scroll"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"dx", "dy"})
    dx: int
    dy: int


@dataclass(frozen=True, slots=True)
class Key(InputEvent):
    """Press or release one named key."""

    TYPE: ClassVar[str] = "key"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"key", "pressed"})
    key: str
    pressed: bool


@dataclass(frozen=True, slots=True)
class TypeText(InputEvent):
    """Type a string as the characters it contains, independent of the keyboard layout."""

    TYPE: ClassVar[str] = "type_text"
    FIELDS: ClassVar[frozenset[str]] = frozenset({"text"})
    text: str


AnyInputEvent = PointerMove | PointerButton | Scroll | Key | TypeText
_EVENT_TYPES: dict[str, type[AnyInputEvent]] = {
    cls.TYPE: cls for cls in (PointerMove, PointerButton, Scroll, Key, TypeText)
}
_TYPE_NAMES = ", ".join(sorted(_EVENT_TYPES))


def deliver(injector: InputInjector, event: AnyInputEvent) -> None:
    """Replay one validated event through a backend."""
    match event:
        case PointerMove(x, y):
            injector.pointer_move(x, y)
        case PointerButton(button, pressed):
            injector.pointer_button(button, pressed)
        case Scroll(dx, dy):
            injector.scroll(dx, dy)
        case Key(key, pressed):
            injector.key(key, pressed)
        case TypeText(text):
            injector.type_text(text)
