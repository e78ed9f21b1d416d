"""When the agent reconnects and how long it waits: close codes and backoff (pure).

What each close code means, and whether trying again can help, is the protocol's
(``rsb_protocol.close_codes``). The agent's rule on top: a code that says "you, or this session,
are not welcome" is final, since trying again would only repeat the refusal, and so is a
WebSocket protocol error; a code that says "not now" (going away, overload, flow control, rate
limit), any other standard code, or no code at all (the network dropped) is retried.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from enum import Enum

from rsb_protocol.close_codes import CLOSE_CODE_EXPLANATIONS, AfterClose, after_close

__all__ = ["CloseVerdict", "close_verdict", "reconnect_delays"]

_RETRIED = frozenset({AfterClose.RESUME, AfterClose.BACK_OFF, AfterClose.OTHER})


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
    text = CLOSE_CODE_EXPLANATIONS.get(code, f"close code {code}")
    after = after_close(code)
    if after is AfterClose.ENDED:
        return CloseVerdict.ENDED, text
    if after in _RETRIED:
        return CloseVerdict.RETRY, text
    return CloseVerdict.FAILED, text


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
