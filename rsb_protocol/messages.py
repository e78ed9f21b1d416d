"""JSON control messages, sent as WebSocket text frames: one frozen dataclass per ``"type"``.

Every message is an object ``{"v": 1, "type": "<name>", ...fields}``. The fields of each class
are described by their annotations (``Annotated`` carries bounds, lengths and patterns), and one
small checker built from those annotations validates both constructed and parsed messages, so a
message that exists is a valid one (the ``h11._events`` idea). Parsing is strict: unknown type,
missing or extra field, wrong type, duplicate key, oversize input all raise a specific
``ProtocolError`` with a message that names the field. Screen, input and chat *content* never
travels here: it is in end-to-end encrypted binary frames (``rsb_protocol.framing``).
"""

from __future__ import annotations

import base64
import json
import re
import types
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from typing import (
    Annotated,
    Any,
    ClassVar,
    Self,
    Union,
    dataclass_transform,
    get_args,
    get_origin,
    get_type_hints,
)

from rsb_protocol import PROTOCOL_VERSION
from rsb_protocol.errors import (
    InvalidMessage,
    MessageTooLarge,
    ProtocolError,
    UnknownMessageType,
    VersionMismatch,
)
from rsb_protocol.framing import HEADER_SIZE, WRAP_PAYLOAD_SIZE, Envelope, FrameType

VERSION = PROTOCOL_VERSION


class KeyAlgorithm(StrEnum):
    """Key-agreement algorithm of an ephemeral public key (both are in WebCrypto)."""

    X25519 = "x25519"
    P256 = "p256"


PUBLIC_KEY_SIZES: dict[KeyAlgorithm, int] = {KeyAlgorithm.X25519: 32, KeyAlgorithm.P256: 65}
"""Raw public key sizes: X25519 32 bytes; P-256 65 bytes, uncompressed X9.62 (0x04 || x || y)."""


class Role(StrEnum):
    """Who sent a message or did an action."""

    AGENT = "agent"
    VIEWER = "viewer"
    CUSTOMER = "customer"
    BROKER = "broker"


class Level(StrEnum):
    """Support level shown to the customer next to an engineer's name."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"


class Source(StrEnum):
    """What shows the customer's screen: the installed agent, or the customer page itself.

    The browser can only show (it cannot inject input into the customer's system), so the
    broker refuses control requests for a ``BROWSER`` source and the console says so.
    """

    AGENT = "agent"
    BROWSER = "browser"


class Permission(StrEnum):
    """What a customer can consent to, per engineer."""

    VIEW = "view"
    CONTROL = "control"
    CLIPBOARD = "clipboard"
    FILES = "files"
    SYSTEM_INFO = "system_info"


Constraint = Callable[[str, Any], None]
"""Extra rule on an already type-checked field value, carried in ``Annotated``."""


def _bounds(lo: int, hi: int) -> Constraint:
    def check(where: str, value: Any) -> None:
        if not lo <= value <= hi:
            raise InvalidMessage(f"{where}: {_quote(value)} is outside {lo}..{hi}")

    return check


def _length(lo: int, hi: int) -> Constraint:
    def check(where: str, value: Any) -> None:
        if not lo <= len(value) <= hi:
            raise InvalidMessage(f"{where}: length {len(value)} is outside {lo}..{hi}")

    return check


def _pattern(regex: str) -> Constraint:
    def check(where: str, value: Any) -> None:
        if re.fullmatch(regex, value) is None:
            raise InvalidMessage(f"{where}: {_quote(value)} does not match {regex}")

    return check


def _base64(lo: int, hi: int) -> Constraint:
    def check(where: str, value: Any) -> None:
        if len(value) > 4 * (hi // 3 + 1):
            raise InvalidMessage(f"{where}: base64 text longer than {hi} bytes")
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text
            raise InvalidMessage(f"{where}: not valid base64") from None
        # Only one spelling per value, so signatures or logs over the text cannot disagree.
        if base64.b64encode(raw).decode("ascii") != value:
            raise InvalidMessage(f"{where}: base64 is not in canonical form")
        if not lo <= len(raw) <= hi:
            raise InvalidMessage(f"{where}: {len(raw)} bytes, expected {lo}..{hi}")

    return check


def _token_text(where: str, value: Any) -> None:
    # Unlike the other checks, never quotes the value: it is a credential.
    if not 16 <= len(value) <= 4096 or re.fullmatch(r"[A-Za-z0-9._-]+", value) is None:
        raise InvalidMessage(f"{where}: not a token")


def _printable(where: str, value: Any) -> None:
    # Text shown to the customer as is: no line breaks, escapes or bidi overrides that could
    # make one request read as another (docs/security.md, "Text from staff").
    if not value.isprintable():
        raise InvalidMessage(f"{where}: control or format characters are not allowed")


CONSENT_REASON_MAX = 200
"""Longest reason a consent request carries to the customer (``clean_text`` cuts there)."""


def clean_text(text: str, limit: int) -> str:
    """Make free text safe to show as one line: what senders of a bounded printable field use.

    Every run of whitespace becomes one space, other control and format characters (escapes,
    bidi overrides, zero-width marks) are dropped, the ends are trimmed and the result is cut
    to ``limit`` characters.

    Args:
        text: Any string, e.g. a reason typed by an engineer.
        limit: Largest length of the result.

    Returns:
        Printable text (``str.isprintable``) of at most ``limit`` characters.
    """
    kept = (" " if c.isspace() else c for c in text if c.isspace() or c.isprintable())
    return " ".join("".join(kept).split())[:limit].rstrip()


_WRAP_FRAME = HEADER_SIZE + WRAP_PAYLOAD_SIZE
U16 = Annotated[int, _bounds(0, 0xFFFF)]
U32 = Annotated[int, _bounds(0, 0xFFFF_FFFF)]
U64 = Annotated[int, _bounds(0, 0xFFFF_FFFF_FFFF_FFFF)]
Ident = Annotated[str, _pattern(r"[A-Za-z0-9._:-]{1,64}")]
Name = Annotated[str, _length(1, 200)]
Reason = Annotated[str, _length(0, 500)]
Text = Annotated[str, _length(0, 2000)]
ShownReason = Annotated[str, _length(0, CONSENT_REASON_MAX), _printable]
KeyB64 = Annotated[str, _base64(32, 65)]
TokenText = Annotated[str, _token_text]
WrapB64 = Annotated[str, _base64(_WRAP_FRAME, _WRAP_FRAME)]

Checker = Callable[[str, Any], Any]
"""Check one field value at path ``where``; return it normalised (enum member, tuple)."""


def _quote(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exact(kind: type, label: str) -> Checker:
    def check(where: str, value: Any) -> Any:
        # Exact type: bool is an int subclass in Python, but true is not a number in JSON.
        if type(value) is not kind:
            raise InvalidMessage(f"{where}: expected {label}, got {type(value).__name__}")
        return value

    return check


def _check_str(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(f"{where}: expected a string, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate ("\ud800") parses, but crashes whoever re-sends it as UTF-8.
            raise InvalidMessage(f"{where}: string is not valid Unicode") from None
    return value


_SIMPLE: dict[Any, Checker] = {
    int: _exact(int, "an integer"),
    bool: _exact(bool, "true or false"),
    str: _check_str,
}


def _checker_for(hint: Any) -> Checker:
    """Build the checker for one annotation; an unsupported one fails at import time."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        inner, constraints = _checker_for(args[0]), args[1:]

        def check_annotated(where: str, value: Any) -> Any:
            value = inner(where, value)
            for constraint in constraints:
                constraint(where, value)
            return value

        return check_annotated
    if origin in (Union, types.UnionType):  # ``X | None``
        (present,) = (arg for arg in args if arg is not type(None))
        inner_present = _checker_for(present)
        return lambda where, value: None if value is None else inner_present(where, value)
    if origin is tuple:  # ``tuple[X, ...]``, a JSON list
        inner_item = _checker_for(args[0])

        def check_list(where: str, value: Any) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise InvalidMessage(f"{where}: expected a list, got {type(value).__name__}")
            return tuple(inner_item(f"{where}[{i}]", item) for i, item in enumerate(value))

        return check_list
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        enum, allowed = hint, ", ".join(hint)

        def check_enum(where: str, value: Any) -> StrEnum:
            try:
                return enum(_SIMPLE[str](where, value))
            except ValueError:
                raise InvalidMessage(f"{where}: {_quote(value)} is not one of {allowed}") from None

        return check_enum
    return _SIMPLE[hint]


_SPECS: dict[type[Message], tuple[tuple[str, Checker, bool], ...]] = {}
"""Per class: (field name, checker, required) in declaration order."""
_SPARSE: dict[type[Message], dict[str, Any]] = {}
"""Per class: fields left off the wire while they hold their default, with that default."""
MESSAGE_TYPES: dict[str, type[Message]] = {}
"""Dispatch table: the ``"type"`` value -> message class."""


@dataclass_transform(frozen_default=True)
class Message:
    """Base of all control messages: validated at construction, serialised with ``to_json``.

    A subclass names its wire type, ``class Hello(Message, name="hello")``, and becomes a frozen
    dataclass registered in ``MESSAGE_TYPES``. Fields with a default may be left out on the wire.
    Fields named in ``sparse`` are left out by ``to_dict`` while they hold their default: a
    field added to a type later is sparse, so a peer whose strict parser predates it still
    accepts every message that does not use it.
    """

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, *, name: str, sparse: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name in MESSAGE_TYPES:
            raise TypeError(f"message type {name!r} is registered twice")
        as_dataclass: Any = dataclass(frozen=True)(cls)
        hints = get_type_hints(cls, include_extras=True)
        cls.TYPE = name
        _SPECS[cls] = tuple(
            (f.name, _checker_for(hints[f.name]), f.default is MISSING)
            for f in fields(as_dataclass)
        )
        defaults = {f.name: f.default for f in fields(as_dataclass)}
        _SPARSE[cls] = {field_name: defaults[field_name] for field_name in sparse}
        MESSAGE_TYPES[name] = cls

    def __post_init__(self) -> None:
        for name, check, _ in _SPECS[type(self)]:
            object.__setattr__(self, name, check(f"{self.TYPE}.{name}", getattr(self, name)))
        self._check_together()

    def _check_together(self) -> None:
        """Rules that span several fields; subclasses override."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object: ``v``, ``type``, then every field (defaults included, but
        for sparse fields at their default)."""
        out: dict[str, Any] = {"v": VERSION, "type": self.TYPE}
        sparse = _SPARSE[type(self)]
        for name, _, _ in _SPECS[type(self)]:
            value = getattr(self, name)
            if name in sparse and value == sparse[name]:
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        """Return the compact JSON text for a WebSocket text frame."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def parse(cls, text: str | bytes, max_size: int) -> Self:
        """Like ``parse_message``, but the message must be of this class.

        Args:
            text: The text frame (bytes are decoded as JSON text: UTF-8, -16 or -32).
            max_size: Largest accepted length: characters for ``str``, bytes for ``bytes``.

        Returns:
            The message.

        Raises:
            MessageTooLarge: ``text`` is longer than ``max_size``.
            VersionMismatch: ``"v"`` is an integer other than 1.
            UnknownMessageType: ``"type"`` is not in ``MESSAGE_TYPES``.
            InvalidMessage: Anything else wrong, including a message of another type.
        """
        message = parse_message(text, max_size)
        if not isinstance(message, cls):
            raise InvalidMessage(f"expected a {cls.TYPE} message, got {message.TYPE}")
        return message


class Hello(Message, name="hello", sparse=("source",)):
    """First message on every connection: who I am and which key algorithms I can use.

    ``source`` (agent only, added later, so sparse) says whether the screen comes from the
    installed agent or from the customer page sharing its screen (view only).
    """

    role: Role
    algorithms: Annotated[tuple[KeyAlgorithm, ...], _length(1, 4)]
    software: Name
    source: Source = Source.AGENT


class Join(Message, name="join", sparse=("source",)):
    """Broker -> all: a participant joined and was given ``slot``.

    For slot 0, ``source`` repeats what the agent's ``hello`` said (sparse, added later).
    """

    slot: U16
    participant: Name
    display_name: Name
    role: Role
    level: Level | None = None
    source: Source = Source.AGENT


class Leave(Message, name="leave"):
    """Broker -> all: a participant left or was removed (the agent starts a new epoch)."""

    slot: U16
    participant: Name
    reason: Reason = ""


class Welcome(Message, name="welcome"):
    """Broker -> a new connection: the slot it was given in which session, for which case."""

    slot: U16
    participant: Name
    session_id: Ident
    case_number: Name
    organisation: Name


class State(Message, name="state"):
    """Broker -> all: the session after any change of consent, control, pause or end.

    ``phase`` is one of waiting, pending_consent, observing, controlling, paused, ended.
    """

    phase: Ident
    viewing_slots: Annotated[tuple[U16, ...], _length(0, 64)] = ()
    controller_slot: U16 | None = None


class ConsentRequest(Message, name="consent_request", sparse=("reason",)):
    """Broker -> agent: ask the customer, naming engineer, level, case and whether recorded.

    ``reason`` is what the engineer said they need it for, shown to the customer as is; it
    is left off the wire when empty, so agents from before it existed still get such requests.
    The broker also sends each request to the customer's page, and then the agent's answer
    (``consent_grant`` or ``consent_refuse``), so the page can show what is being asked.
    """

    request_id: Ident
    slot: U16
    permission: Permission
    engineer_name: Name
    engineer_level: Level
    case_number: Name
    organisation: Name
    recorded: bool
    reason: ShownReason = ""


class ConsentGrant(Message, name="consent_grant"):
    """Agent -> broker: the customer said yes to ``request_id``."""

    request_id: Ident
    slot: U16
    permission: Permission


class ConsentRefuse(Message, name="consent_refuse"):
    """Agent -> broker: the customer said no, or let the prompt time out."""

    request_id: Ident
    slot: U16
    permission: Permission
    reason: Reason = ""


class ConsentRevoke(Message, name="consent_revoke"):
    """Agent or customer page -> broker: withdraw a permission now; always honoured."""

    slot: U16
    permission: Permission
    reason: Reason = ""


class ControlRequest(Message, name="control_request"):
    """Viewer -> broker: I would like control (the broker turns it into a consent_request)."""

    request_id: Ident
    slot: U16
    reason: Reason = ""


class ControlRelease(Message, name="control_release"):
    """Viewer -> broker: I give control back."""

    slot: U16


class Renew(Message, name="renew"):
    """Viewer -> broker: a renewed staff token of the same user for this connection, sent
    before the token it connected with expires (a live socket ends at its token's expiry)."""

    token: TokenText

    def __repr__(self) -> str:
        return "Renew(token=<redacted>)"  # never in a log line or a test failure


class PublicKeyAnnounce(Message, name="public_key"):
    """Any participant -> all, relayed by the broker: my ephemeral public key for this session."""

    slot: U16
    algorithm: KeyAlgorithm
    key: KeyB64

    def _check_together(self) -> None:
        if len(self.key_bytes) != PUBLIC_KEY_SIZES[self.algorithm]:
            size = PUBLIC_KEY_SIZES[self.algorithm]
            raise InvalidMessage(f"public_key.key: {self.algorithm} keys are {size} bytes")

    @property
    def key_bytes(self) -> bytes:
        """The raw public key."""
        return base64.b64decode(self.key)


class GroupKey(Message, name="group_key"):
    """Agent -> one viewer: the very bytes of a KEY_WRAP frame, for a text-only path."""

    slot: U16
    epoch: U32
    wrapped: WrapB64

    def _check_together(self) -> None:
        try:
            frame = Envelope.parse(self.wrapped_bytes, _WRAP_FRAME)
        except ProtocolError as exc:
            raise InvalidMessage(f"group_key.wrapped: {exc}") from None
        if (frame.frame_type, frame.slot, frame.epoch) != (
            FrameType.KEY_WRAP,
            self.slot,
            self.epoch,
        ):
            raise InvalidMessage("group_key.wrapped: not a KEY_WRAP frame for this slot and epoch")

    @property
    def wrapped_bytes(self) -> bytes:
        """The KEY_WRAP frame, ready for ``GroupReceiver.install_wrapped_key``."""
        return base64.b64decode(self.wrapped)


class Ack(Message, name="ack"):
    """Either way: the message with id ``ref`` was received and applied."""

    ref: Ident


class ErrorMessage(Message, name="error"):
    """Either way: something was refused; ``code`` is a ``ProtocolError.code`` or the broker's."""

    code: Ident
    message: Text
    ref: Ident | None = None


class Pause(Message, name="pause"):
    """Customer or agent -> all: no frames and no input until ``resume``."""

    by: Role
    reason: Reason = ""


class Resume(Message, name="resume"):
    """Customer or agent -> all: frames and consented input may flow again."""

    by: Role


class End(Message, name="end"):
    """Anyone allowed to -> all: the session is over; sockets close after this."""

    by: Role
    reason: Reason = ""


class ChatMeta(Message, name="chat"):
    """Sender -> broker, for the audit log: a CHAT frame went out; its text stays encrypted."""

    slot: U16
    epoch: U32
    seq: U64
    size: U32


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers that disagree on which duplicate wins would let one message mean two things.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise InvalidMessage("duplicate key in JSON object")
    return result


def _reject_constant(name: str) -> Any:
    raise InvalidMessage(f"{name} is not valid JSON")


def parse_message(text: str | bytes, max_size: int) -> Message:
    """Parse and validate one control message of any type.

    Args:
        text: The text frame (bytes are decoded as JSON text: UTF-8, -16 or -32).
        max_size: Largest accepted length: characters for ``str``, bytes for ``bytes``.

    Returns:
        The message, an instance of ``MESSAGE_TYPES[type]``; ``match`` on its class.

    Raises:
        MessageTooLarge: ``text`` is longer than ``max_size``.
        VersionMismatch: ``"v"`` is an integer other than 1.
        UnknownMessageType: ``"type"`` is not in ``MESSAGE_TYPES``.
        InvalidMessage: Not JSON, not an object, duplicate key, or a field missing, extra, or
            of the wrong type or range.
    """
    if len(text) > max_size:
        raise MessageTooLarge(f"message of {len(text)} exceeds the limit of {max_size}")
    try:
        data = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
        )
    except RecursionError:
        raise InvalidMessage("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InvalidMessage(f"not valid JSON: {exc.msg} at offset {exc.pos}") from None
    except ValueError:  # undecodable bytes, or an integer with thousands of digits
        raise InvalidMessage("not valid JSON text") from None
    if not isinstance(data, dict):
        raise InvalidMessage(f"expected a JSON object, got {type(data).__name__}")
    if "v" not in data or "type" not in data:
        raise InvalidMessage("missing field 'v' or 'type'")
    version = _SIMPLE[int]("v", data.pop("v"))
    if version != VERSION:
        if not 0 <= version <= 0xFFFF:
            raise InvalidMessage(f"v: {_quote(version)} is not a version number")
        raise VersionMismatch(version, VERSION)
    kind = _SIMPLE[str]("type", data.pop("type"))
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        raise UnknownMessageType(f"unknown message type {_quote(kind)}")
    specs = _SPECS[cls]
    extra = data.keys() - {name for name, _, _ in specs}
    if extra:
        raise InvalidMessage(f"{kind}: unexpected field(s) {_quote(sorted(extra), 80)}")
    missing = [name for name, _, required in specs if required and name not in data]
    if missing:
        raise InvalidMessage(f"{kind}: missing field(s) {', '.join(missing)}")
    return cls(**data)
