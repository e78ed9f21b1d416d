"""WebSocket close codes of the relay: each number, what it means, and what a client does next.

The broker closes with them (``broker/errors.py`` gives each error class one); the agent, the
``rsb view`` client and the web pages (through the generated ``web/js/wire.js``) read them
here, so a code's meaning and its consequence are written once (docs/api.md, "WebSocket close
codes"). ``close_reason`` makes the reason text a valid close frame (RFC 6455 §5.5.1).
"""

from __future__ import annotations

from enum import Enum, IntEnum
from types import MappingProxyType

__all__ = [
    "AFTER_CLOSE",
    "CLOSE_CODE_EXPLANATIONS",
    "CLOSE_REASON_MAX",
    "AfterClose",
    "CloseCode",
    "StandardCloseCode",
    "after_close",
    "close_reason",
]


class CloseCode(IntEnum):
    """The relay's close codes in the private range, grouped in families.

    40xx authentication and request shape (the 44xx ones mirror HTTP statuses), 41xx session
    and consent, 42xx relay and flow.
    """

    AUTH_FAILED = 4001
    UNSUPPORTED_VERSION = 4002
    INVALID_TOKEN = 4003
    FORBIDDEN = 4004
    ORIGIN_REJECTED = 4005
    ACCESS_REVOKED = 4006
    TOKEN_EXPIRED = 4007
    MESSAGE_TOO_BIG = 4009
    RATE_LIMITED = 4029
    BAD_MESSAGE = 4400
    NOT_FOUND = 4404
    CONFLICT = 4409
    VALIDATION_FAILED = 4422
    INVALID_TRANSITION = 4100
    CONSENT_REQUIRED = 4101
    CODE_REJECTED = 4102
    SESSION_ENDED = 4103
    REPLACED = 4104
    AGENT_OUTDATED = 4105
    RELAY_UNAVAILABLE = 4200
    FLOW_CONTROL = 4201


class StandardCloseCode(IntEnum):
    """The RFC 6455 (§7.4.1) codes a client of the relay may see, named as the RFC names them."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL_CLOSURE = 1006
    """Never sent: what a client reports when the connection dropped without a close frame."""
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


CLOSE_CODE_EXPLANATIONS: MappingProxyType[int, str] = MappingProxyType(
    {
        CloseCode.AUTH_FAILED: "authentication failed",
        CloseCode.UNSUPPORTED_VERSION: "protocol version not supported",
        CloseCode.INVALID_TOKEN: "token missing, malformed, expired or for another session",
        CloseCode.FORBIDDEN: "your role or consent does not allow this",
        CloseCode.ORIGIN_REJECTED: "Origin header not in the allow-list",
        CloseCode.ACCESS_REVOKED: "access withdrawn: user disabled or signing key revoked",
        CloseCode.TOKEN_EXPIRED: "the connection's token expired; log in or join again",
        CloseCode.MESSAGE_TOO_BIG: "message larger than the limit for this role",
        CloseCode.RATE_LIMITED: "too many messages",
        CloseCode.BAD_MESSAGE: "malformed message",
        CloseCode.NOT_FOUND: "no such session",
        CloseCode.CONFLICT: "conflicts with the session's current state",
        CloseCode.VALIDATION_FAILED: "message fields failed validation",
        CloseCode.INVALID_TRANSITION: "event not allowed in the session's current state",
        CloseCode.CONSENT_REQUIRED: "the customer has not consented to this",
        CloseCode.CODE_REJECTED: "session code used, expired or unknown",
        CloseCode.SESSION_ENDED: "the session has ended",
        CloseCode.REPLACED: "a newer connection took this participant's place",
        CloseCode.AGENT_OUTDATED: "this agent is older than the broker accepts; download it again",
        CloseCode.RELAY_UNAVAILABLE: "relay unavailable",
        CloseCode.FLOW_CONTROL: "peer too slow; reconnect to resume",
        StandardCloseCode.NORMAL_CLOSURE: "closed normally",
        StandardCloseCode.GOING_AWAY: "the broker is going away",
        StandardCloseCode.PROTOCOL_ERROR: "WebSocket protocol error",
        StandardCloseCode.UNSUPPORTED_DATA: "unsupported data",
        StandardCloseCode.ABNORMAL_CLOSURE: "connection lost",
        StandardCloseCode.INVALID_PAYLOAD: "invalid message data",
        StandardCloseCode.POLICY_VIOLATION: "policy violation",
        StandardCloseCode.MESSAGE_TOO_BIG: "message too large",
        StandardCloseCode.MANDATORY_EXTENSION: "a required extension is missing",
        StandardCloseCode.INTERNAL_ERROR: "internal error in the broker",
        StandardCloseCode.TRY_AGAIN_LATER: "the broker is overloaded; try again later",
    }
)
"""A short explanation of every code above, for people to read (any client, any role)."""


class AfterClose(Enum):
    """What a client does after a close code: the one rule each client applies its own way.

    The agent retries RESUME, BACK_OFF and OTHER and stops on the rest; the console resumes on
    RESUME only; the customer page stops on ENDED and REFUSED; ``rsb view`` exits 0, 2 or 3.
    """

    ENDED = "ended"
    """The session is over: stop, nothing went wrong."""
    REFUSED = "refused"
    """Not this token, user or session: a new login or code may help, the same token never."""
    FAILED = "failed"
    """The two sides disagree (protocol, size, state, replaced): trying again repeats it."""
    RESUME = "resume"
    """Not now, and the broker keeps the place for its resume window: reconnect, same token."""
    BACK_OFF = "back_off"
    """Too much, too fast: reconnect only after slowing down."""
    OTHER = "other"
    """Closed normally, a broker bug, or a standard code the relay does not use."""


AFTER_CLOSE: MappingProxyType[int, AfterClose] = MappingProxyType(
    {
        CloseCode.SESSION_ENDED: AfterClose.ENDED,
        CloseCode.AUTH_FAILED: AfterClose.REFUSED,
        CloseCode.INVALID_TOKEN: AfterClose.REFUSED,
        CloseCode.FORBIDDEN: AfterClose.REFUSED,
        CloseCode.ORIGIN_REJECTED: AfterClose.REFUSED,
        CloseCode.ACCESS_REVOKED: AfterClose.REFUSED,
        CloseCode.TOKEN_EXPIRED: AfterClose.REFUSED,
        CloseCode.NOT_FOUND: AfterClose.REFUSED,
        CloseCode.RELAY_UNAVAILABLE: AfterClose.RESUME,
        CloseCode.FLOW_CONTROL: AfterClose.RESUME,
        StandardCloseCode.GOING_AWAY: AfterClose.RESUME,
        StandardCloseCode.ABNORMAL_CLOSURE: AfterClose.RESUME,
        CloseCode.RATE_LIMITED: AfterClose.BACK_OFF,
        StandardCloseCode.TRY_AGAIN_LATER: AfterClose.BACK_OFF,
        StandardCloseCode.PROTOCOL_ERROR: AfterClose.FAILED,
        StandardCloseCode.UNSUPPORTED_DATA: AfterClose.FAILED,
        StandardCloseCode.INVALID_PAYLOAD: AfterClose.FAILED,
        StandardCloseCode.POLICY_VIOLATION: AfterClose.FAILED,
        StandardCloseCode.MESSAGE_TOO_BIG: AfterClose.FAILED,
        StandardCloseCode.MANDATORY_EXTENSION: AfterClose.FAILED,
    }
)
"""The codes that are not FAILED (private) or OTHER (standard); ``after_close`` reads it."""


def after_close(code: int | None) -> AfterClose:
    """Classify a close code.

    Args:
        code: The close code received, or None when the connection dropped without one.

    Returns:
        The table's entry; otherwise FAILED for a private code (4000-4999: the broker refused
        something, maybe in a newer version's words) and OTHER for anything else.
    """
    if code is None:
        return AfterClose.RESUME
    if code in AFTER_CLOSE:
        return AFTER_CLOSE[code]
    return AfterClose.FAILED if 4000 <= code < 5000 else AfterClose.OTHER


CLOSE_REASON_MAX = 123
"""RFC 6455 §5.5: a control frame carries at most 125 bytes, two of them the close code."""


def close_reason(text: str, limit: int = CLOSE_REASON_MAX) -> bytes:
    """Encode a close reason, cut to ``limit`` bytes between two characters.

    A close reason must be valid UTF-8 (RFC 6455 §5.5.1, §8.1): cut inside a character, a
    browser fails the connection (1006) instead of reporting the close code. A lone surrogate
    (possible in a ``str`` read from JSON) becomes ``?``.

    Args:
        text: The reason, of any length.
        limit: The most bytes to keep, 0 to ``CLOSE_REASON_MAX``.

    Returns:
        The longest prefix of ``text`` whose UTF-8 encoding fits in ``limit`` bytes.

    Raises:
        ValueError: ``limit`` is outside 0 to ``CLOSE_REASON_MAX``.
    """
    if not 0 <= limit <= CLOSE_REASON_MAX:
        raise ValueError(f"a close reason fits in 0 to {CLOSE_REASON_MAX} bytes, not {limit}")
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    cut = limit
    while data[cut] & 0xC0 == 0x80:  # a continuation byte: the character started before
        cut -= 1
    return data[:cut]
