"""What a customer gives the agent to join: a code or a join link, and the broker's address.

Pure: the command line (``rsb-agent join``), the join window and the terminal fallback all
read the customer's entry here, before anything is sent, and the packaging checks a baked-in
broker default with the same address rule. A problem is an ``EntryError`` whose ``key``
names it; each caller words it for its reader (``agent_client/texts.py`` for customers).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from agent_client.texts import Language, text

__all__ = ["MAX_DIGITS", "MIN_DIGITS", "EntryError", "check_broker", "is_loopback", "read_entry"]

MIN_DIGITS, MAX_DIGITS = 6, 16
"""The code lengths accepted (broker/sessions/codes.py issues 10 by default)."""
_SEPARATORS = re.compile(r"[ .-]")


@dataclass
class EntryError(Exception):
    """What the customer typed cannot be a code or a broker address: `key` says why.

    Keys: ``code_empty``, ``link_bad``, ``code_not_digits``, ``code_length`` (with
    ``count``), ``broker_missing``, ``broker_bad``, ``broker_http``.
    """

    key: str
    values: dict[str, object] = field(default_factory=dict)

    def text_in(self, language: Language) -> str:
        return text(self.key, language, **self.values)


def read_entry(code_text: str, broker_text: str | None) -> tuple[str, str]:
    """Check what the customer typed, before anything is sent.

    Args:
        code_text: The code (digits with spaces, dots or dashes) or a join link
            (``https://host/j#1234567890``).
        broker_text: The support server's address, which wins over a link's host; a link's
            host is used when this is empty or None.

    Returns:
        The broker's base URL without a trailing slash, and the code's digits.

    Raises:
        EntryError: Empty, not digits, the wrong number of digits, a malformed link, or no
            usable broker address (plain http only to this machine).
    """
    typed = code_text.strip()
    if not typed:
        raise EntryError("code_empty")
    link_base = None
    if "://" in typed:
        parts = urlsplit(typed)
        if not parts.fragment or not parts.path.rstrip("/").endswith("/j"):
            raise EntryError("link_bad")
        link_base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')[:-2]}"
        typed = parts.fragment
    digits = _SEPARATORS.sub("", typed)
    if not (digits.isascii() and digits.isdigit()):
        raise EntryError("code_not_digits")
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise EntryError("code_length", {"count": len(digits)})
    broker = (broker_text or "").strip() or link_base
    if not broker:
        raise EntryError("broker_missing")
    return check_broker(broker), digits


def check_broker(url: str) -> str:
    """The broker URL without a trailing slash.

    Raises:
        EntryError: ``broker_bad`` (not http(s), no host) or ``broker_http`` (plain http to
            a host that is not this machine: the agent token must not cross a network in
            the clear).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EntryError("broker_bad")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise EntryError("broker_http")
    return url.strip().rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
