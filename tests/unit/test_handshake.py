"""The clients' handshake: what they offer, and a logger that never records the token."""

from __future__ import annotations

import logging

import pytest

from rsb_protocol.handshake import REDACTED, handshake_logger, redact, subprotocols

TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJyaXRhIn0.c2lnbmF0dXJl"


def test_the_version_is_offered_before_the_token() -> None:
    assert subprotocols(TOKEN) == ["rsb.v1", f"rsb.token.{TOKEN}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"rsb.v1, rsb.token.{TOKEN}", f"rsb.v1, {REDACTED}"),
        (f"rsb.token.{TOKEN},rsb.v1", f"{REDACTED},rsb.v1"),
        (f"'rsb.token.{TOKEN}'", f"'{REDACTED}'"),
        ("rsb.v1", "rsb.v1"),
    ],
)
def test_redact_blanks_every_offered_token(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_handshake_logger_blanks_the_token_in_message_and_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = handshake_logger("tests.handshake")
    assert handshake_logger("tests.handshake") is logger and len(logger.filters) == 1
    offered = f"rsb.v1, rsb.token.{TOKEN}"
    with caplog.at_level(logging.DEBUG, logger="tests.handshake"):
        # How websockets logs each request header, and a message with the token inlined.
        logging.LoggerAdapter(logger, {}).debug("> %s: %s", "Sec-WebSocket-Protocol", offered)
        logger.debug(f"offered {offered}")
    assert [r.getMessage() for r in caplog.records] == [
        f"> Sec-WebSocket-Protocol: rsb.v1, {REDACTED}",
        f"offered rsb.v1, {REDACTED}",
    ]
    assert TOKEN not in caplog.text
