"""The organisation's release key: Ed25519 keys, detached signatures and the agent files' names.

A release of the downloadable agent is signed with one Ed25519 key kept offline by whoever
publishes releases (``rsb release keygen``, ``rsb release sign``). The signature is *detached*:
``FILE.sig`` holds exactly the 64 raw bytes of an Ed25519 signature over the whole file, so
OpenSSL 3 can check it without this project (``openssl pkeyutl -verify -pubin -inkey PUB
-rawin -in FILE -sigfile FILE.sig``). The broker only publishes the signature and the public
key; it never holds the private key (docs/agent.md, "Signed downloads").

This module is pure: bytes in, bytes out. Reading files, asking for passphrases and writing
keys with safe permissions is the CLI's job (``broker/cli.py``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "AGENT_PLATFORMS",
    "SIGNATURE_SIZE",
    "SIGNATURE_SUFFIX",
    "BadSignature",
    "ReleaseKeyError",
    "agent_platform",
    "fingerprint",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_pem",
    "sign",
    "signature_text",
    "verify",
]

SIGNATURE_SIZE: Final = 64
"""Bytes in an Ed25519 signature, and so in every ``.sig`` file."""

SIGNATURE_SUFFIX: Final = ".sig"

AGENT_PLATFORMS: Final = ("linux-x86_64", "windows-x86_64", "macos-arm64", "macos-x86_64")
"""The platforms an agent file can be built for, as its name spells them."""

_AGENT_NAME = re.compile(
    r"rsb-agent-(?:(linux-x86_64|macos-arm64|macos-x86_64)|(windows-x86_64)(?:\.exe)?)"
)


class ReleaseKeyError(ValueError):
    """A key that cannot be used: not PEM, not Ed25519, or a wrong or missing passphrase."""


class BadSignature(ValueError):
    """The signature does not match the file under this public key (or is malformed)."""


def agent_platform(name: str) -> str | None:
    """The platform an agent file is for, from its name, or None if it is no agent file.

    ``rsb-agent-linux-x86_64``, ``rsb-agent-windows-x86_64`` (with or without ``.exe``) and
    the two macOS names are agent files; nothing else is (no other suffix, no directory part,
    no version in the name).
    """
    match = _AGENT_NAME.fullmatch(name)
    return (match.group(1) or match.group(2)) if match else None


def generate_key() -> Ed25519PrivateKey:
    """A new release key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey, passphrase: bytes | None = None) -> bytes:
    """The private key as PKCS#8 PEM, encrypted with ``passphrase`` when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The public half as SubjectPublicKeyInfo PEM (what the broker publishes)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, in hex: short enough to read over the phone."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Read a private release key.

    Raises:
        ReleaseKeyError: not a PEM private key, not Ed25519, or the passphrase is wrong,
            missing for an encrypted key, or given for a plain one.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError as exc:  # encrypted without a passphrase, or plain with one
        raise ReleaseKeyError(f"passphrase: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ReleaseKeyError(f"not a usable private key (or a wrong passphrase): {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseKeyError(f"release keys are Ed25519, this is {type(key).__name__}")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Read a public release key.

    Raises:
        ReleaseKeyError: not a PEM public key, or not Ed25519.
    """
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ReleaseKeyError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseKeyError(f"release keys are Ed25519, this is {type(key).__name__}")
    return key


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """The detached signature of ``data``: 64 raw bytes, the content of ``FILE.sig``."""
    return key.sign(data)


def verify(data: bytes, signature: bytes, key: Ed25519PublicKey) -> None:
    """Check a detached signature.

    Raises:
        BadSignature: the signature is not 64 bytes, or does not match ``data`` under ``key``
            (a changed file, another key, a changed signature).
    """
    if len(signature) != SIGNATURE_SIZE:
        raise BadSignature(
            f"a signature is {SIGNATURE_SIZE} raw bytes, this one is {len(signature)}"
        )
    try:
        key.verify(signature, data)
    except InvalidSignature:
        raise BadSignature("the signature does not match this file and key") from None


def signature_text(signature: bytes) -> str:
    """A signature as the broker publishes it: standard base64 of the 64 raw bytes."""
    return base64.b64encode(signature).decode("ascii")
