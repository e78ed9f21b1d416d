"""When the agent reconnects and how long it waits: close codes and backoff (pure).

The close codes are the broker's (`broker/errors.py`, `CloseCode`), copied here by number
because the agent installs without the broker. The rule: a code that says "you, or this
session, are not welcome" is final, since trying again would only repeat the refusal, and so
is a WebSocket protocol error; a code that says "not now" (going away, overload, flow control,
rate limit) or no code at all (the network dropped) is retried.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from enum import Enum

__all__ = ["CLOSE_REASONS", "CloseVerdict", "close_verdict", "reconnect_delays"]

SESSION_ENDED = 4103

CLOSE_REASONS: dict[int, str] = {
    4001: "authentication failed",
    4002: "the broker speaks another protocol version; update the agent",
    4003: "the agent token was refused (expired, or for another session)",
    4004: "not allowed",
    4005: "origin refused",
    4006: "access to this session was withdrawn",
    4007: "the agent token expired",
    4009: "a message was too large",
    4029: "too many messages; slowing down",
    4100: "not allowed in the session's current state",
    4101: "the customer has not consented to this",
    4102: "the session code was used, expired or unknown",
    SESSION_ENDED: "the session has ended",
    4104: "another agent connection took this one's place",
    4200: "the relay is unavailable",
    4201: "the connection was too slow",
    4400: "the broker refused a malformed message",
    4404: "no such session",
}
"""Short explanations for the customer, by close code."""

_RETRY_4XXX = frozenset({4029, 4200, 4201})
_FINAL_STANDARD = frozenset({1002, 1003, 1007, 1008, 1009, 1010})


class CloseVerdict(Enum):
    """What to do after a connection closed."""

    ENDED = "ended"
    """The session is over: exit normally."""
    FAILED = "failed"
    """Refused for good: exit with the connection-failure code."""
    RETRY = "retry"
    """Reconnect after a backoff delay."""


def close_verdict(code: int | None) -> tuple[CloseVerdict, str]:
    """Classify a close code.

    Args:
        code: The WebSocket close code, or None when the connection dropped without one.

    Returns:
        The verdict and a short explanation for the customer.
    """
    if code is None:
        return CloseVerdict.RETRY, "the network connection dropped"
    text = CLOSE_REASONS.get(code, f"close code {code}")
    if code == SESSION_ENDED:
        return CloseVerdict.ENDED, text
    if (4000 <= code < 5000 and code not in _RETRY_4XXX) or code in _FINAL_STANDARD:
        return CloseVerdict.FAILED, text
    return CloseVerdict.RETRY, text


def reconnect_delays(
    rng: random.Random, initial: float = 0.5, maximum: float = 10.0
) -> Iterator[float]:
    """Yield reconnect delays: `initial` doubling up to `maximum`, each jittered down by up
    to half, so agents dropped together by a broker restart do not return in lockstep.

    Args:
        rng: Source of the jitter.
        initial: The first delay's upper bound, in seconds.
        maximum: The cap, in seconds.
    """
    delay = initial
    while True:
        yield delay * rng.uniform(0.5, 1.0)
        delay = min(delay * 2, maximum)
