"""Per-connection limits of the relay: message sizes, rates and what one viewer may make the
others receive. Exceeding a rate closes the connection (4029); the numbers are documented in
docs/protocol.md and docs/api.md."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from broker.errors import RateLimited
from broker.relay.flow import TokenBucket
from rsb_protocol import messages as msg

TEXT_LIMIT = 64 * 1024
MAX_MESSAGE = {"agent": 8 * 1024 * 1024, "viewer": 256 * 1024, "customer": 16 * 1024}
# Messages per second and burst, per connection: input and acks from a viewer, control text.
BINARY_RATE = {"agent": (5000.0, 10000.0), "viewer": (1000.0, 2000.0), "customer": (2.0, 10.0)}
TEXT_RATE = (50.0, 200.0)
# Lines a person types, each one audited: per viewer connection.
CHAT_RATE = (5.0, 20.0)
# A viewer's key is announced once per connection; a few more allow a change of algorithm,
# and no more: each announcement is relayed to everyone in the session.
MAX_KEY_ANNOUNCEMENTS = 4
# Prompts on the customer's screen: control requests per viewer connection.
CONTROL_REQUEST_RATE = (0.2, 3.0)
BINARY_CHARGE_BATCH = 16
DROP_AUDIT_SECONDS = 5.0


class Limiter:
    """Per-connection rate limits; exceeding them closes the connection (4029).

    Binary messages are the frame path, so they are charged to the bucket in batches of up to
    ``BINARY_CHARGE_BATCH`` (one clock read and one bucket update per batch, not per message).
    A flood is still stopped within that many messages of crossing the limit.
    """

    def __init__(self, kind: str) -> None:
        rate, burst = BINARY_RATE[kind]
        self.binary = TokenBucket(rate, burst)
        self.text = TokenBucket(*TEXT_RATE)
        self._batch = max(1, min(BINARY_CHARGE_BATCH, int(burst)))
        self._uncharged = 0

    def check_text(self) -> None:
        """A JSON message, ping or pong: one token each."""
        if not self.text.allow(time.monotonic()):
            raise RateLimited("too many messages on this connection", retry_after=1.0)

    def check_binary(self) -> None:
        self._uncharged += 1
        if self._uncharged >= self._batch:
            cost, self._uncharged = self._uncharged, 0
            if not self.binary.allow(time.monotonic(), cost):
                raise RateLimited("too many messages on this connection", retry_after=1.0)


@dataclass
class ViewerAllowance:
    """What one viewer connection may still make the others receive: each chat line and key
    goes to the agent (and keys to everyone), each control request to the customer's screen."""

    chat: TokenBucket = field(default_factory=lambda: TokenBucket(*CHAT_RATE))
    control_requests: TokenBucket = field(
        default_factory=lambda: TokenBucket(*CONTROL_REQUEST_RATE)
    )
    key_announcements: int = 0
    announced: msg.PublicKeyAnnounce | None = None
