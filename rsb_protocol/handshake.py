"""The WebSocket handshake both clients make: ``rsb.v1`` plus the token as a subprotocol.

Browsers cannot set an ``Authorization`` header on a WebSocket, and a token in the URL ends up
in access logs, so the token travels as the subprotocol ``rsb.token.<token>`` next to
``rsb.v1`` (the broker refuses a handshake without ``rsb.v1``). That header is the one place a
client library could write the token down: websockets logs every request header at DEBUG. The
clients therefore hand websockets a logger whose records have the token blanked out.
"""

from __future__ import annotations

import logging
import re

SUBPROTOCOL = "rsb.v1"
TOKEN_PREFIX = "rsb.token."
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"[^\s,;\"']+")
REDACTED = TOKEN_PREFIX + "<redacted>"


def subprotocols(token: str) -> list[str]:
    """What a client offers: the protocol version first, then its token."""
    return [SUBPROTOCOL, TOKEN_PREFIX + token]


def redact(text: str) -> str:
    """``text`` with every offered token replaced by ``rsb.token.<redacted>``."""
    return _TOKEN.sub(REDACTED, text)


class _RedactTokens(logging.Filter):
    """Blank offered tokens out of a record's message and arguments before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def handshake_logger(name: str) -> logging.Logger:
    """A logger for a WebSocket client library that never records the offered token.

    The filter sits on the logger itself, so it sees every record the library creates
    through it, whatever handlers the application attaches higher up.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())
    return logger
