"""Token issue and verification: claims, clock, rotation, and every forgery we know of."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from broker.auth.keys import LEEWAY, MAX_TTL, Keyring, SigningKey
from broker.auth.tokens import AUDIENCES, MAX_TOKEN_CHARS, TokenKind, issue, verify
from broker.errors import InvalidToken
from broker.types import Role

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=1)
SESSION = {"sid": "s-1", "case": "C-000123"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


@pytest.fixture
def ring() -> Keyring:
    return Keyring([SigningKey.generate(NOW - timedelta(days=1))])


def staff(ring: Keyring, role: str = "rse", now: datetime = NOW) -> str:
    return issue(ring, subject="alice", kind="staff", now=now, ttl=TTL, claims={"role": role})


def payload_for(kind: str = "staff", **changes: Any) -> dict[str, Any]:
    iat = int(NOW.timestamp())
    payload: dict[str, Any] = {
        "iss": "rsb", "aud": AUDIENCES[kind], "sub": "alice", "iat": iat, "nbf": iat,
        "exp": iat + 600, "jti": "j1", "role": "rse",
    }  # fmt: skip
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def signed(ring: Keyring, payload: Mapping[str, Any], **header: Any) -> str:
    key = ring.active
    headers = {"kid": key.kid, **header}
    return jwt.encode(dict(payload), key.private_key, algorithm="EdDSA", headers=headers)


def rejected(ring: Keyring, token: str, kind: TokenKind = "staff", now: datetime = NOW) -> str:
    with pytest.raises(InvalidToken) as info:
        verify(ring, token, now=now, kind=kind)
    return info.value.message


def test_staff_round_trip(ring: Keyring) -> None:
    token = issue(
        ring, subject="alice", kind="staff", now=NOW, ttl=TTL, claims={"role": "rse", "name": "A"}
    )
    claims = verify(ring, token, now=NOW + timedelta(minutes=5), kind="staff")
    assert (claims.subject, claims.role, claims.name) == ("alice", Role.RSE, "A")
    assert claims.kind == "staff"
    assert claims.issued_at == NOW and claims.expires_at == NOW + TTL
    assert claims.kid == ring.active.kid and claims.session_id is None
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == ring.active.kid


@pytest.mark.parametrize("kind", ["customer", "agent"])
def test_session_round_trip(ring: Keyring, kind: TokenKind) -> None:
    token = issue(ring, subject=f"{kind}:s-1", kind=kind, now=NOW, ttl=TTL, claims=SESSION)
    claims = verify(ring, token, now=NOW, kind=kind)
    assert (claims.session_id, claims.case_number, claims.role) == ("s-1", "C-000123", None)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iss"] == "rsb" and payload["aud"] == f"rsb:{kind}"
    assert {"iat", "nbf", "exp", "jti"} <= payload.keys()


def test_each_token_gets_its_own_jti(ring: Keyring) -> None:
    first, second = (verify(ring, staff(ring), now=NOW, kind="staff") for _ in range(2))
    assert first.jti != second.jti


def test_wrong_kind_is_rejected(ring: Keyring) -> None:
    assert "not a customer token" in rejected(ring, staff(ring), kind="customer")
    agent = issue(ring, subject="agent:s-1", kind="agent", now=NOW, ttl=TTL, claims=SESSION)
    assert "not a customer token" in rejected(ring, agent, kind="customer")


def test_expiry_uses_the_injected_clock_with_leeway(ring: Keyring) -> None:
    token = staff(ring)
    verify(ring, token, now=NOW + TTL + LEEWAY - timedelta(seconds=1), kind="staff")
    assert "expired" in rejected(ring, token, now=NOW + TTL + LEEWAY)
    assert "not yet valid" in rejected(ring, token, now=NOW - LEEWAY - timedelta(seconds=1))
    verify(ring, token, now=NOW - LEEWAY, kind="staff")


def test_rotation_keeps_old_tokens_valid_until_pruned(ring: Keyring) -> None:
    old_token = staff(ring)
    rotated = ring.rotated(NOW)
    assert rotated.active.kid != ring.active.kid
    assert verify(rotated, old_token, now=NOW, kind="staff").kid == ring.active.kid
    new_claims = verify(rotated, staff(rotated), now=NOW, kind="staff")
    assert new_claims.kid == rotated.active.kid
    assert len(rotated.pruned(NOW + MAX_TTL).keys) == 2
    pruned = rotated.pruned(NOW + MAX_TTL + LEEWAY + timedelta(seconds=1))
    assert [k.kid for k in pruned.keys] == [rotated.active.kid]
    assert "unknown kid" in rejected(pruned, old_token)


def test_retired_key_cannot_mint_new_tokens(ring: Keyring) -> None:
    rotated = ring.rotated(NOW)
    old = rotated.get(ring.active.kid)
    assert old is not None and old.retired_at == NOW
    later = int((NOW + timedelta(hours=1)).timestamp())
    forged = jwt.encode(
        payload_for(iat=later, nbf=later, exp=later + 60),
        old.private_key,
        algorithm="EdDSA",
        headers={"kid": old.kid},
    )
    message = rejected(rotated, forged, now=NOW + timedelta(hours=1))
    assert "after its signing key was retired" in message


def test_unknown_kid_and_foreign_key(ring: Keyring) -> None:
    other = Keyring([SigningKey.generate(NOW)])
    assert "unknown kid" in rejected(ring, staff(other))
    body = f"{segment(payload_for())}.AAAA"
    assert "unknown kid" in rejected(ring, f"{segment({'alg': 'EdDSA'})}.{body}")
    assert "malformed" in rejected(ring, f"{segment({'alg': 'EdDSA', 'kid': 7})}.{body}")


def test_same_kid_different_key_is_a_bad_signature(ring: Keyring) -> None:
    impostor = SigningKey.generate(NOW)
    forged = jwt.encode(
        payload_for(), impostor.private_key, algorithm="EdDSA", headers={"kid": ring.active.kid}
    )
    assert "bad token signature" in rejected(ring, forged)


def test_tampered_payload_is_a_bad_signature(ring: Keyring) -> None:
    header, _, signature = staff(ring, role="desk").split(".")
    payload = jwt.decode(staff(ring, role="desk"), options={"verify_signature": False})
    payload["role"] = "admin"
    assert "bad token signature" in rejected(ring, f"{header}.{segment(payload)}.{signature}")


def test_alg_none_is_rejected(ring: Keyring) -> None:
    header = segment({"alg": "none", "typ": "JWT", "kid": ring.active.kid})
    assert "malformed" in rejected(ring, f"{header}.{segment(payload_for())}.")
    assert "EdDSA" in rejected(ring, f"{header}.{segment(payload_for())}.AAAA")


def test_hs256_with_the_public_key_as_secret_is_rejected(ring: Keyring) -> None:
    public = ring.active.private_key.public_key()
    secrets = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ]
    header = segment({"alg": "HS256", "kid": ring.active.kid})
    for secret in secrets:
        signing_input = f"{header}.{segment(payload_for())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert "EdDSA" in rejected(ring, f"{signing_input}.{b64(mac)}")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jti": None}, "lacks claim jti"),
        ({"exp": None}, "lacks claim exp"),
        ({"role": None}, "claim role"),
        ({"role": "root"}, "unknown role"),
        ({"iss": "someone"}, "issuer"),
        ({"aud": ["rsb:staff", "rsb:agent"]}, "not a staff token"),
        ({"iat": 1.5e9}, "integer"),
        ({"exp": True}, "integer"),
        ({"sub": ""}, "claim sub"),
        ({"exp": int(NOW.timestamp()) + int(MAX_TTL.total_seconds()) + 1}, "lifetime"),
    ],
)
def test_bad_claims_are_rejected(ring: Keyring, changes: dict[str, Any], message: str) -> None:
    assert message in rejected(ring, signed(ring, payload_for(**changes)))


def test_session_token_needs_session_claims(ring: Keyring) -> None:
    token = signed(ring, payload_for("customer", role=None, sid="s-1"))
    assert "claim case" in rejected(ring, token, kind="customer")


@pytest.mark.parametrize(
    "token", ["", "a.b", "a.b.c.d", "a..c", "ä.b.c", "x" * (MAX_TOKEN_CHARS + 1), "e30.e30.e30"]
)
def test_malformed_tokens(ring: Keyring, token: str) -> None:
    rejected(ring, token)


def test_naive_now_is_a_caller_bug(ring: Keyring) -> None:
    with pytest.raises(ValueError, match="timezone"):
        verify(ring, staff(ring), now=NOW.replace(tzinfo=None), kind="staff")
    with pytest.raises(ValueError, match="timezone"):
        staff(ring, now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "robot"}, "kind"),
        ({"claims": {}}, "carry"),
        ({"claims": {"role": "rse", "sid": "s"}}, "carry"),
        ({"ttl": timedelta(0)}, "ttl"),
        ({"ttl": MAX_TTL + timedelta(seconds=1)}, "ttl"),
        ({"claims": {"role": "root"}}, "unknown role"),
        ({"subject": "x" * 300}, "claim sub"),
    ],
)
def test_issue_refuses_what_verify_would_refuse(
    ring: Keyring, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "subject": "alice", "kind": "staff", "now": NOW, "ttl": TTL, "claims": {"role": "rse"},
    }  # fmt: skip
    with pytest.raises(ValueError, match=message):
        issue(ring, **{**args, **kwargs})


def test_verify_refuses_unknown_kind(ring: Keyring) -> None:
    with pytest.raises(ValueError, match="kind"):
        verify(ring, staff(ring), now=NOW, kind="robot")  # type: ignore[arg-type]
