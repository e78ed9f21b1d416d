"""Where tokens travel: the Authorization header and the WebSocket subprotocol convention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.auth.bearer import MAX_TOKEN_CHARS, bearer_from_header, token_from_subprotocols
from broker.auth.keys import Keyring, SigningKey
from broker.auth.tokens import issue, verify
from broker.errors import InvalidToken

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["Bearer a.b.c", "bearer a.b.c", "BEARER   a.b.c", " Bearer a.b.c "]
)
def test_bearer_header(value: str) -> None:
    assert bearer_from_header(value) == "a.b.c"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic dXNlcjpwdw==", "scheme"),
        ("Bearer", "malformed"),
        ("Bearer a.b c", "malformed"),
        ("Bearer a\u00e9b", "malformed"),
        ("Bearer " + "a" * (MAX_TOKEN_CHARS + 64), "too long"),
    ],
)
def test_bearer_header_refusals(value: str | None, message: str) -> None:
    with pytest.raises(InvalidToken, match=message):
        bearer_from_header(value)


def test_token_subprotocol_convention() -> None:
    ring = Keyring([SigningKey.generate(NOW)])
    token = issue(
        ring, subject="alice", kind="staff", now=NOW, ttl=timedelta(hours=1), claims={"role": "rse"}
    )
    assert token_from_subprotocols(["rsb.v1", f"rsb.token.{token}"]) == token
    assert verify(ring, token, now=NOW, kind="staff").subject == "alice"
    assert token_from_subprotocols(["rsb.v1"]) is None
    assert token_from_subprotocols([]) is None


@pytest.mark.parametrize(
    "offered",
    [
        ["rsb.v1", "rsb.token.a.b.c", "rsb.token.d.e.f"],
        ["rsb.token."],
        ["rsb.token.a.b"],
        ["rsb.token.a.b.c!"],
        ["rsb.token." + "a" * MAX_TOKEN_CHARS + ".b.c"],
    ],
)
def test_token_subprotocol_refusals(offered: list[str]) -> None:
    with pytest.raises(InvalidToken):
        token_from_subprotocols(offered)
