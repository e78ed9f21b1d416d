"""Staff password hashing with Argon2id, and a dummy path that hides which users exist.

Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``), so each stored hash
carries its own parameters: raising the cost later only needs ``needs_rehash`` at the next
successful login. Verification is constant-time inside argon2; this module never compares secrets.
Hashing and verifying block their thread for the whole KDF: the broker calls them through
``broker.auth.kdf.KdfPool``, never on the event loop.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from broker.errors import ValidationFailed

MAX_PASSWORD_BYTES = 1024
"""Longer inputs are refused before hashing, so a login request cannot buy unbounded CPU."""


@dataclass(frozen=True)
class HashParams:
    """Argon2id cost parameters; the defaults are RFC 9106's low-memory profile (64 MiB, t=3).

    Tests pass cheap values; production keeps the defaults or raises them.
    """

    time_cost: int = RFC_9106_LOW_MEMORY.time_cost
    memory_cost: int = RFC_9106_LOW_MEMORY.memory_cost
    parallelism: int = RFC_9106_LOW_MEMORY.parallelism
    hash_len: int = RFC_9106_LOW_MEMORY.hash_len
    salt_len: int = RFC_9106_LOW_MEMORY.salt_len


DEFAULT_PARAMS = HashParams()


@functools.lru_cache(maxsize=8)
def _hasher(params: HashParams) -> PasswordHasher:
    return PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=params.hash_len,
        salt_len=params.salt_len,
        type=Type.ID,
    )


def check_password_input(pw: str) -> str:
    """Return ``pw`` if it is an acceptable password input, before any hashing.

    Args:
        pw: The offered password.

    Returns:
        ``pw`` unchanged.

    Raises:
        ValidationFailed: Empty, not a string, longer than ``MAX_PASSWORD_BYTES`` once UTF-8
            encoded, or not encodable as UTF-8.
    """
    if not isinstance(pw, str) or not pw:
        raise ValidationFailed("password must be a non-empty string")
    try:
        size = len(pw.encode("utf-8"))
    except UnicodeEncodeError:
        # Lone surrogates survive json.loads; refuse them rather than hash an unencodable string.
        raise ValidationFailed("password is not valid Unicode") from None
    if size > MAX_PASSWORD_BYTES:
        raise ValidationFailed(f"password longer than {MAX_PASSWORD_BYTES} bytes")
    return pw


def hash_password(pw: str, params: HashParams = DEFAULT_PARAMS) -> str:
    """Hash a password with Argon2id and a fresh random salt.

    Args:
        pw: The password, 1 to ``MAX_PASSWORD_BYTES`` bytes once UTF-8 encoded.
        params: Cost parameters; keep the defaults outside tests.

    Returns:
        The PHC-format hash string to store.

    Raises:
        ValidationFailed: The password is empty, too long or not encodable as UTF-8.
    """
    return _hasher(params).hash(check_password_input(pw))


@functools.lru_cache(maxsize=8)
def dummy_hash(params: HashParams = DEFAULT_PARAMS) -> str:
    """Return a hash of an unguessable password, made once per parameter set.

    Args:
        params: The parameters real hashes use, so verifying against it costs the same time.

    Returns:
        A PHC-format hash that no password will ever match.
    """
    return _hasher(params).hash(secrets.token_urlsafe(32))


def verify_password(stored_hash: str | None, pw: str, params: HashParams = DEFAULT_PARAMS) -> bool:
    """Check a password against a stored hash, spending the same time when the user is unknown.

    Pass ``stored_hash=None`` when no such user exists. The password is then verified against
    ``dummy_hash(params)`` and the result discarded: answering an unknown name faster than a
    wrong password would let an attacker enumerate staff user names by timing the login form.

    Args:
        stored_hash: The user's stored hash, or ``None`` for an unknown user.
        pw: The password offered at login.
        params: Parameters of the stored hashes, used only for the dummy path.

    Returns:
        True only if ``stored_hash`` is a valid hash of ``pw``. A mismatch, an unknown user or a
        corrupt stored hash all return False.

    Raises:
        ValidationFailed: The offered password is empty, too long or not encodable as UTF-8
            (checked before any lookup-dependent work, so it reveals nothing about the user).
    """
    check_password_input(pw)
    hasher = _hasher(params)
    if stored_hash is None:
        try:
            hasher.verify(dummy_hash(params), pw)
        except VerificationError:
            pass
        return False
    try:
        return hasher.verify(stored_hash, pw)
    except (VerificationError, ValueError):  # InvalidHashError and UnicodeEncodeError included
        return False


def needs_rehash(stored_hash: str, params: HashParams = DEFAULT_PARAMS) -> bool:
    """Tell whether a stored hash was made with parameters other than ``params``.

    Call it after a successful ``verify_password`` and store ``hash_password(pw)`` if True.

    Args:
        stored_hash: The user's stored hash.
        params: The parameters new hashes should use.

    Returns:
        True if the hash uses other parameters or another algorithm, or cannot be parsed.
    """
    try:
        return _hasher(params).check_needs_rehash(stored_hash)
    except ValueError:  # InvalidHashError, or a non-ASCII string argon2 cannot encode
        return True
