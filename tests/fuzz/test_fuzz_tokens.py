"""Fuzz the token verifier and the token extractors against their documented exceptions.

Every input is either accepted or rejected with ``InvalidToken``; any other exception is a bug.
Inputs range from arbitrary text to properly signed tokens with arbitrary headers and claims,
so the checks after the signature are reached too.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import jwt
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.auth.tokens import (
    Claims,
    Keyring,
    SigningKey,
    TokenKind,
    bearer_from_header,
    issue,
    token_from_subprotocols,
    verify,
)
from broker.errors import InvalidToken

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RING = Keyring([SigningKey.generate(NOW - timedelta(days=1))]).rotated(NOW - timedelta(hours=1))
KINDS: list[TokenKind] = ["staff", "customer", "agent"]
GOOD = issue(
    RING, subject="alice", kind="staff", now=NOW, ttl=timedelta(hours=1), claims={"role": "rse"}
)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=6,
)
TS = int(NOW.timestamp())
ALTERNATIVES: dict[str, st.SearchStrategy[Any]] = {
    "iss": st.sampled_from(["rsb", "other", ""]),
    "aud": st.sampled_from(["rsb:staff", "rsb:customer", "rsb:agent", "rsb"]),
    "iat": st.integers(TS - 10**6, TS + 10**6) | st.integers(),
    "nbf": st.integers(TS - 10**6, TS + 10**6),
    "exp": st.integers(TS - 10**6, TS + 10**6) | st.integers(),
    "role": st.sampled_from(["desk", "rse", "admin", "root", "RSE", ""]),
}


@st.composite
def signed_tokens(draw: st.DrawFn) -> tuple[str, TokenKind]:
    """A token signed by a ring key, starting from valid claims and spoiling some of them."""
    kind = draw(st.sampled_from(KINDS))
    iat = TS - draw(st.integers(-60, 13 * 3600))  # shrinks towards valid times
    payload: dict[str, Any] = {
        "iss": "rsb", "aud": f"rsb:{kind}", "sub": "alice", "iat": iat, "nbf": iat,
        "exp": iat + 600 + draw(st.integers(-700, 13 * 3600)), "jti": "j", "role": "rse",
        "name": "A", "sid": "s-1", "case": "C-1",
    }  # fmt: skip
    for name in list(payload):
        roll = draw(st.integers(0, 30))  # Hypothesis favours 0: keep most claims valid
        if roll == 28:
            del payload[name]
        elif roll == 29:
            payload[name] = draw(json_values)
        elif roll == 30:
            payload[name] = draw(ALTERNATIVES.get(name, st.text(max_size=300)))
    payload.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    key = draw(st.sampled_from([RING.active, *RING.keys]))
    extra = draw(st.dictionaries(st.sampled_from(["typ", "cty", "x5u"]), json_values, max_size=1))
    headers = {**extra, "kid": key.kid}
    try:
        token = jwt.encode(payload, key.private_key, algorithm="EdDSA", headers=headers)
    except (jwt.PyJWTError, TypeError, ValueError):
        token = "pyjwt.refused.this"
    return token, kind


def check_verify(token: Any, kind: TokenKind) -> None:
    try:
        claims = verify(RING, cast(str, token), now=NOW, kind=kind)
    except InvalidToken:
        return
    assert isinstance(claims, Claims) and claims.kind == kind


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@given(token=st.text(max_size=5000), kind=st.sampled_from(KINDS))
def test_verify_arbitrary_text(token: str, kind: TokenKind) -> None:
    check_verify(token, kind)


@given(token=st.binary(max_size=600) | st.none() | st.integers(), kind=st.sampled_from(KINDS))
def test_verify_non_strings(token: object, kind: TokenKind) -> None:
    check_verify(token, kind)


@given(
    parts=st.lists(st.text(alphabet=B64URL, max_size=200), min_size=1, max_size=5),
    kind=st.sampled_from(KINDS),
)
def test_verify_token_shaped_noise(parts: list[str], kind: TokenKind) -> None:
    check_verify(".".join(parts), kind)


@given(
    header=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    payload=st.binary(max_size=300),
    signature=st.binary(max_size=80),
    kind=st.sampled_from(KINDS),
)
def test_verify_arbitrary_segments(
    header: dict[str, Any], payload: bytes, signature: bytes, kind: TokenKind
) -> None:
    header_seg = b64(json.dumps(header).encode())
    check_verify(f"{header_seg}.{b64(payload)}.{b64(signature)}", kind)


@given(index=st.integers(0, len(GOOD) - 1), char=st.sampled_from(B64URL + ".=!"))
def test_verify_mutated_good_token(index: int, char: str) -> None:
    check_verify(GOOD[:index] + char + GOOD[index + 1 :], "staff")
    check_verify(GOOD[:index], "staff")


@settings(max_examples=150)
@given(case=signed_tokens())
def test_verify_properly_signed_arbitrary_claims(case: tuple[str, TokenKind]) -> None:
    check_verify(*case)


@given(value=st.none() | st.text(max_size=5000))
def test_bearer_from_header(value: str | None) -> None:
    try:
        token = bearer_from_header(value)
    except InvalidToken:
        return
    assert token and " " not in token and value is not None and token in value


@given(token=st.text(alphabet=B64URL + ".~+/", min_size=1, max_size=200))
def test_bearer_round_trip(token: str) -> None:
    try:
        assert bearer_from_header(f"Bearer {token}") == token
    except InvalidToken:
        pass


@given(protocols=st.lists(st.text(max_size=100) | st.just("rsb.token."), max_size=5))
def test_token_from_subprotocols(protocols: list[str]) -> None:
    try:
        token = token_from_subprotocols(protocols)
    except InvalidToken:
        return
    assert token is None or f"rsb.token.{token}" in protocols
