"""Session join codes: generate, display, parse what a customer typed, hash, and bound guessing.

A code is a short string of decimal digits read out over the phone, so it is typed by hand:
``parse_code`` forgives spaces, dashes and dots but nothing else. Codes are stored only as
``hash_code(code, pepper)`` (HMAC-SHA256 under a server-side pepper), so a leaked sessions table,
export or log does not hand out live codes, and a lookup by hash needs no constant-time
comparison of its own. (The pepper sits in the installation's secrets; whoever holds it and the
table could search the code space offline, within the code's few minutes of life.)
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from datetime import timedelta

from broker.errors import ValidationFailed

MIN_DIGITS = 6
MAX_DIGITS = 16
MAX_INPUT_CHARS = 64
"""Typed input longer than this is refused before any parsing."""

MIN_PEPPER_BYTES = 16

_TYPED = re.compile(r"[0-9](?:[ .-]*[0-9])*")  # [0-9], not \d: \d also matches e.g. Arabic digits
_SEPARATORS = str.maketrans("", "", " .-")


def _check_digits(digits: int) -> int:
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise ValueError(f"codes have {MIN_DIGITS} to {MAX_DIGITS} digits, not {digits}")
    return digits


def generate_code(digits: int = 10) -> str:
    """Draw a code uniformly at random from all ``10**digits`` strings of that many digits.

    Args:
        digits: Code length, ``MIN_DIGITS`` to ``MAX_DIGITS``.

    Returns:
        The code as a string of ASCII digits (leading zeros kept).

    Raises:
        ValueError: ``digits`` is out of range.
    """
    return f"{secrets.randbelow(10 ** _check_digits(digits)):0{digits}d}"


def format_code(code: str) -> str:
    """Group a code's digits for reading aloud: threes, with a lone last digit joining its group.

    So 10 digits read ``123 456 7890``, 9 read ``123 456 789``, 8 read ``123 456 78`` and 7
    read ``123 4567``: no group is ever a single digit.

    Args:
        code: ASCII digits, as from ``generate_code`` or ``parse_code``.

    Returns:
        The digits in space-separated groups.

    Raises:
        ValueError: ``code`` is empty or not all ASCII digits.
    """
    if not code or not code.isascii() or not code.isdigit():
        raise ValueError("a code is a non-empty string of ASCII digits")
    groups = [code[i : i + 3] for i in range(0, len(code), 3)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        groups[-2:] = [groups[-2] + groups[-1]]
    return " ".join(groups)


def parse_code(text: str, digits: int = 10) -> str:
    """Turn what a customer typed into a code, forgiving spaces, dashes and dots between digits.

    Args:
        text: The typed input; surrounding whitespace is ignored.
        digits: How many digits a code has.

    Returns:
        The code as ``digits`` ASCII digits.

    Raises:
        ValidationFailed: The input is too long, has characters other than ASCII digits and
            separators, starts or ends with a separator, or has the wrong number of digits.
        ValueError: ``digits`` is out of range (a configuration bug, not client input).
    """
    _check_digits(digits)
    if not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        raise ValidationFailed(f"a session code is at most {MAX_INPUT_CHARS} characters")
    stripped = text.strip(" \t\r\n")
    if not _TYPED.fullmatch(stripped):
        raise ValidationFailed("a session code has only digits, spaces, dashes and dots")
    code = stripped.translate(_SEPARATORS)
    if len(code) != digits:
        raise ValidationFailed(f"a session code has {digits} digits")
    return code


def hash_code(code: str, pepper: bytes) -> str:
    """Compute the stored form of a code.

    Args:
        code: The code, as returned by ``generate_code`` or ``parse_code``.
        pepper: Server secret of at least ``MIN_PEPPER_BYTES`` bytes, kept apart from the
            sessions table.

    Returns:
        HMAC-SHA256 of the code under the pepper, as lowercase hex.

    Raises:
        ValueError: The pepper is too short or the code is not ASCII digits.
    """
    if len(pepper) < MIN_PEPPER_BYTES:
        raise ValueError(f"the code pepper must be at least {MIN_PEPPER_BYTES} bytes")
    if not code.isascii() or not code.isdigit():
        raise ValueError("a code is a string of ASCII digits")
    return hmac.new(pepper, code.encode("ascii"), hashlib.sha256).hexdigest()


def code_matches(code: str, pepper: bytes, stored_hash: str) -> bool:
    """Compare a code against a stored hash in constant time.

    Args:
        code: The parsed code.
        pepper: The pepper the stored hash was made with.
        stored_hash: A value from ``hash_code``.

    Returns:
        True if ``code`` hashes to ``stored_hash``.

    Raises:
        ValueError: As ``hash_code``.
    """
    return hmac.compare_digest(hash_code(code, pepper), stored_hash)


def guess_success_bound(
    digits: int,
    live_codes: int,
    attempts_per_address: int,
    addresses: int,
    lifetime: timedelta,
    window: timedelta | None = None,
) -> float:
    """Bound the chance that an attacker guesses any live code before it expires.

    Each guess names one code out of ``10**digits`` and hits one of ``live_codes`` live codes
    with probability at most ``live_codes / 10**digits``. By the union bound, ``G`` guesses
    succeed with probability at most ``G * live_codes / 10**digits``. The rate limiter lets one
    address make ``attempts_per_address`` guesses in any ``window``; a lifetime spans at most
    ``floor(lifetime / window) + 1`` windows (the +1 covers a burst at each end), which bounds
    one address's guesses. The global alarm only signals, so every address counts.

    Args:
        digits: Code length.
        live_codes: Codes valid at the same time (all open invitations).
        attempts_per_address: Guesses the limiter allows one address per ``window``.
        addresses: Addresses the attacker controls.
        lifetime: How long a code stays valid.
        window: The limiter's window; None means ``attempts_per_address`` counts every guess
            an address makes during one lifetime.

    Returns:
        An upper bound in [0, 1] on the probability that any guess succeeds.

    Raises:
        ValueError: A count is negative, ``digits`` is below 1, or a duration is not positive.
    """
    if min(live_codes, attempts_per_address, addresses) < 0 or digits < 1:
        raise ValueError("counts must be non-negative and digits at least 1")
    if lifetime <= timedelta(0) or (window is not None and window <= timedelta(0)):
        raise ValueError("lifetime and window must be positive")
    windows = 1 if window is None else math.floor(lifetime / window) + 1
    guesses = addresses * attempts_per_address * windows
    space: int = 10**digits
    return min(1.0, guesses * live_codes / space)
