"""Where tokens travel: the HTTP ``Authorization`` header and the WebSocket subprotocol list.

Tokens never travel in URLs: URLs end up in access logs, proxy logs, ``Referer`` headers and
browser history. HTTP requests send ``Authorization: Bearer <jwt>``. A browser cannot set
headers on a WebSocket, so the client offers two subprotocols::

    new WebSocket(url, ["rsb.v1", "rsb.token." + jwt])

Every JWT character (base64url and ``.``) is legal in a subprotocol name. The shell splits
``Sec-WebSocket-Protocol`` on commas, passes the list to ``token_from_subprotocols``, and
answers ``Sec-WebSocket-Protocol: rsb.v1`` only: it never echoes the token back, so the token
does not reappear in response headers or in logs that record them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from broker.errors import InvalidToken

MAX_TOKEN_CHARS = 4096
"""Longer tokens are refused before any parsing; ours are well under 1 KiB."""

SUBPROTOCOL = "rsb.v1"
TOKEN_SUBPROTOCOL_PREFIX = "rsb.token."

COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
"""Shape of a compact JWS: three non-empty base64url segments (ASCII only, unlike ``\\w``)."""

_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # b64token, RFC 6750 section 2.1


def bearer_from_header(value: str | None) -> str:
    """Extract the token from an ``Authorization: Bearer <token>`` header value.

    The scheme name is case-insensitive (RFC 9110 section 11.1).

    Args:
        value: The header value, or None if the header is absent.

    Returns:
        The token, not yet verified.

    Raises:
        InvalidToken: The header is absent, too long, of another scheme, or malformed.
    """
    if not value:
        raise InvalidToken("missing Authorization header")
    if len(value) > MAX_TOKEN_CHARS + 64:
        raise InvalidToken("Authorization header too long")
    scheme, _, token = value.strip(" ").partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidToken("Authorization scheme must be Bearer")
    token = token.lstrip(" ")
    if not _B64TOKEN.fullmatch(token):
        raise InvalidToken("malformed bearer token")
    return token


def token_from_subprotocols(protocols: Sequence[str]) -> str | None:
    """Find the token a WebSocket client offered as ``rsb.token.<jwt>``.

    Args:
        protocols: The offered subprotocols, split from ``Sec-WebSocket-Protocol`` on commas
            and stripped of spaces.

    Returns:
        The token, not yet verified, or None if no token subprotocol was offered.

    Raises:
        InvalidToken: More than one token was offered, or the token is empty or malformed.
    """
    offered = [p for p in protocols if p.startswith(TOKEN_SUBPROTOCOL_PREFIX)]
    if not offered:
        return None
    if len(offered) > 1:
        raise InvalidToken("more than one token subprotocol offered")
    token = offered[0].removeprefix(TOKEN_SUBPROTOCOL_PREFIX)
    if len(token) > MAX_TOKEN_CHARS or not COMPACT_JWS.fullmatch(token):
        raise InvalidToken("malformed token subprotocol")
    return token
