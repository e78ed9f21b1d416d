"""`rsb-agent` arguments: codes and links, broker URLs, and the attach token's sources."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from agent_client.cli import (
    TOKEN_ENV,
    UsageError,
    check_broker_url,
    main,
    parse_target,
    read_agent_token,
    token_claims,
)


def fake_jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'EdDSA'})}.{part(claims)}.c2lnbmF0dXJl"


TOKEN = fake_jwt({"sid": "Glt5M5z9WROoJ9ThynxK2A", "case": "C-000123", "kind": "agent"})


def test_codes_and_links_name_the_broker_and_the_digits() -> None:
    assert parse_target("123 456-7890", "https://support.example/") == (
        "https://support.example",
        "1234567890",
    )
    assert parse_target("https://support.example/j#1234567890", None) == (
        "https://support.example",
        "1234567890",
    )
    for bad in ("12345", "abc def ghij", "https://support.example/x#1234567890"):
        with pytest.raises(UsageError):
            parse_target(bad, "https://support.example")
    with pytest.raises(UsageError, match="--broker"):
        parse_target("1234567890", None)


def test_plain_http_only_to_this_machine() -> None:
    assert check_broker_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_broker_url("http://localhost:8080") == "http://localhost:8080"
    with pytest.raises(UsageError, match="https"):
        check_broker_url("http://support.example")
    with pytest.raises(UsageError):
        check_broker_url("ftp://support.example")


def test_the_attach_token_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert read_agent_token(None, {TOKEN_ENV: f"  {TOKEN}\n"}) == TOKEN
    token_file = tmp_path / "agent.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    # The file wins over the environment when both are given.
    assert read_agent_token(str(token_file), {TOKEN_ENV: "other.token.here"}) == TOKEN
    with pytest.raises(UsageError, match=TOKEN_ENV):
        read_agent_token(None, {})
    with pytest.raises(UsageError, match="cannot read"):
        read_agent_token(str(tmp_path / "missing"), {})
    with pytest.raises(UsageError, match="customer page"):
        read_agent_token(None, {TOKEN_ENV: "not-a-jwt"})


def test_the_token_names_the_session_and_case_to_expect() -> None:
    assert token_claims(TOKEN) == ("Glt5M5z9WROoJ9ThynxK2A", "C-000123")
    for bad in (
        fake_jwt({"sid": "s"}),
        fake_jwt({"sid": 3, "case": "C-1"}),
        "a.%%%.c",
        "a.b.c",
    ):
        with pytest.raises(UsageError):
            token_claims(bad)


def test_attach_without_a_token_exits_2_before_touching_the_screen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["attach", "--broker", "http://127.0.0.1:9", "--source", "test-pattern"]) == 2
    assert TOKEN_ENV in capsys.readouterr().err


def test_the_token_is_never_an_argument() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["attach", "--broker", "http://127.0.0.1:9", "--token", TOKEN])
    assert exited.value.code == 2
