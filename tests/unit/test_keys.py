"""Signing keys: the keyring's rules, derived kids and PEM storage."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker.auth.keys import Keyring, SigningKey
from broker.auth.tokens import issue, verify

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def ring() -> Keyring:
    return Keyring([SigningKey.generate(NOW - timedelta(days=1))])


def staff(ring: Keyring) -> str:
    return issue(
        ring, subject="alice", kind="staff", now=NOW, ttl=timedelta(hours=1), claims={"role": "rse"}
    )


def test_keyring_rules() -> None:
    first = SigningKey.generate(NOW - timedelta(days=2))
    second = SigningKey.generate(NOW - timedelta(days=1))
    ring = Keyring([second, first])
    assert ring.keys == (first, second) and ring.active == second
    assert ring.get("nope") is None and ring.public_key("nope") is None
    with pytest.raises(ValueError, match="duplicate"):
        Keyring([first, first])
    retired = Keyring([k for k in ring.rotated(NOW).keys if k.retired_at is not None])
    with pytest.raises(ValueError, match="no active"):
        _ = retired.active
    assert "private_key" not in repr(first)


def test_kid_is_the_rfc7638_thumbprint() -> None:
    key = SigningKey.generate(NOW)
    raw = key.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    jwk = '{"crv":"Ed25519","kty":"OKP","x":"' + b64(raw) + '"}'
    assert key.kid == b64(hashlib.sha256(jwk.encode()).digest())


@pytest.mark.parametrize("password", [None, b"hunter2-but-longer"])
def test_pem_round_trip(ring: Keyring, password: bytes | None) -> None:
    key = ring.active
    pem = key.to_pem(password)
    assert pem.startswith("-----BEGIN " + ("ENCRYPTED " if password else "") + "PRIVATE KEY")
    loaded = SigningKey.from_pem(key.kid, pem, key.created_at, None, password=password)
    assert verify(Keyring([loaded]), staff(ring), now=NOW, kind="staff").kid == key.kid
    loaded_bytes = SigningKey.from_pem(key.kid, pem.encode(), key.created_at, password=password)
    assert loaded_bytes.kid == key.kid


def test_pem_refusals(ring: Keyring) -> None:
    encrypted = ring.active.to_pem(b"right-password")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    for pem, password in [
        (encrypted, b"wrong-password"),
        (encrypted, None),
        ("not a pem", None),
        ("é", None),
        (ec_pem, None),
    ]:
        with pytest.raises(ValueError, match="signing key"):
            SigningKey.from_pem("k", pem, NOW, password=password)
