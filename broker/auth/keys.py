"""Ed25519 signing keys for tokens, and the keyring that rotates them.

Rotation: ``Keyring.rotated(now)`` adds a new signing key and marks the old one retired; tokens
signed by the old key keep verifying until they expire. ``Keyring.pruned(now)`` then drops keys
retired more than ``MAX_TTL`` ago, when no token they signed can still be valid. Token
verification also refuses tokens a retired key claims to have issued after its retirement, so a
leaked retired key is worthless ``MAX_TTL`` after retirement even if pruning is late.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MAX_TTL = timedelta(hours=12)
"""Longest lifetime a token may have; also how long a retired key must stay in the ring."""

LEEWAY = timedelta(seconds=30)
"""Clock skew tolerated between the broker instances that issue and verify tokens."""


def _thumbprint(public: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: a kid derived from the key, so it cannot drift from it."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    jwk = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 key of the ring; ``retired_at`` set means it verifies but no longer signs."""

    kid: str
    private_key: Ed25519PrivateKey = field(repr=False)
    created_at: datetime
    retired_at: datetime | None = None

    @classmethod
    def generate(cls, now: datetime) -> SigningKey:
        """Create a fresh key whose kid is its RFC 7638 thumbprint.

        Args:
            now: Creation time, recorded as ``created_at``.

        Returns:
            A new, non-retired signing key.
        """
        private = Ed25519PrivateKey.generate()
        return cls(_thumbprint(private.public_key()), private, now)

    def to_pem(self, password: bytes | None = None) -> str:
        """Serialize the private key as PKCS8 PEM for storage.

        Args:
            password: If given, encrypt the PEM with the best scheme cryptography offers.

        Returns:
            The PEM text; the caller stores kid and dates beside it.
        """
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if password:
            encryption = serialization.BestAvailableEncryption(password)
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        return pem.decode("ascii")

    @classmethod
    def from_pem(
        cls,
        kid: str,
        pem: str | bytes,
        created_at: datetime,
        retired_at: datetime | None = None,
        *,
        password: bytes | None = None,
    ) -> SigningKey:
        """Load a key written by ``to_pem``.

        Args:
            kid: The stored key id.
            pem: PKCS8 PEM text or bytes.
            created_at: Stored creation time.
            retired_at: Stored retirement time, if any.
            password: The PEM's password, if it is encrypted.

        Returns:
            The signing key.

        Raises:
            ValueError: The PEM is malformed, wrongly encrypted or not an Ed25519 key.
        """
        try:
            data = pem.encode("ascii") if isinstance(pem, str) else pem
            private = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot load signing key {kid!r}: {exc}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"signing key {kid!r} is not Ed25519")
        return cls(kid, private, created_at, retired_at)


class Keyring:
    """The signing keys in use: the newest non-retired one signs, every one of them verifies."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        """Build a ring.

        Args:
            keys: The keys, in any order; a verify-only ring may hold retired keys only.

        Raises:
            ValueError: Two keys share a kid.
        """
        self._keys = {key.kid: key for key in keys}
        if len(self._keys) != len(keys):
            raise ValueError("duplicate kid in keyring")
        self._public = {key.kid: key.private_key.public_key() for key in keys}

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """All keys, oldest first."""
        return tuple(sorted(self._keys.values(), key=lambda k: k.created_at))

    @property
    def active(self) -> SigningKey:
        """The newest non-retired key, which signs new tokens.

        Raises:
            ValueError: Every key in the ring is retired.
        """
        live = [key for key in self.keys if key.retired_at is None]
        if not live:
            raise ValueError("keyring has no active signing key")
        return live[-1]

    def get(self, kid: str) -> SigningKey | None:
        """Look a key up by kid.

        Args:
            kid: The key id from a token header.

        Returns:
            The key, or None if the ring has no such key.
        """
        return self._keys.get(kid)

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """Look a verification key up by kid.

        Args:
            kid: The key id from a token header.

        Returns:
            The public key, or None if the ring has no such key.
        """
        return self._public.get(kid)

    def rotated(self, now: datetime) -> Keyring:
        """Start signing with a new key; older keys stay to verify the tokens they signed.

        Args:
            now: Creation time of the new key and retirement time of the previous ones.

        Returns:
            A new ring; this one is unchanged.
        """
        old = [key if key.retired_at else replace(key, retired_at=now) for key in self.keys]
        return Keyring([*old, SigningKey.generate(now)])

    def pruned(self, now: datetime, max_ttl: timedelta = MAX_TTL) -> Keyring:
        """Drop keys retired long enough ago that no token they signed is still valid.

        Args:
            now: The current time.
            max_ttl: The longest token lifetime in use.

        Returns:
            A new ring without keys retired before ``now - max_ttl - LEEWAY``.
        """
        horizon = now - max_ttl - LEEWAY
        return Keyring([k for k in self.keys if k.retired_at is None or k.retired_at > horizon])
