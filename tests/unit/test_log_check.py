"""The session-wide token log check (tests/log_check.py) sees records and catches tokens.

These go through the real root logger the check is installed on, so they prove the installed
check works, not a copy of it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from broker.auth import tokens
from broker.auth.keys import Keyring, SigningKey
from tests.log_check import TokenLogCheck

FORGED = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJyaXRhIn0.c2lnbmF0dXJlLW5vdC1yZWFs"


def test_installed_on_root_at_debug(token_log_check: TokenLogCheck) -> None:
    root = logging.getLogger()
    assert token_log_check in root.handlers
    assert root.isEnabledFor(logging.DEBUG)
    before = token_log_check.records
    logging.getLogger("broker.anything").debug("a harmless line")
    assert token_log_check.records == before + 1


def test_a_jwt_at_any_level_is_caught(token_log_check: TokenLogCheck) -> None:
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        with token_log_check.expecting_leak() as found:
            logging.getLogger("aiohttp.access").log(level, 'GET "/x?token=%s" 200', FORGED)
        assert len(found) == 1 and FORGED in found[0].text, level
    with token_log_check.expecting_leak() as found:
        try:
            raise ValueError(f"bad token {FORGED}")
        except ValueError:
            logging.getLogger("broker").exception("failed")  # in the traceback text only
    assert len(found) == 1


def test_an_issued_token_is_caught_even_in_part(token_log_check: TokenLogCheck) -> None:
    now = datetime.now(UTC)
    keyring = Keyring([SigningKey.generate(now)])
    issued_before = token_log_check.issued
    token = tokens.issue(  # the real issuer: the check learns of the token as it is made
        keyring,
        subject="rita",
        kind="staff",
        now=now,
        ttl=timedelta(minutes=5),
        claims={"role": "rse"},
    )
    assert token_log_check.issued == issued_before + 1
    signature = token.split(".")[2]
    with token_log_check.expecting_leak() as found:
        logging.getLogger("broker.relay").warning("protocol offered: rsb.token.x%s", signature)
    assert len(found) == 1  # no longer JWT-shaped, yet recognised as part of an issued token


def test_child_output_is_scanned(token_log_check: TokenLogCheck) -> None:
    before = token_log_check.lines_scanned
    with token_log_check.expecting_leak() as found:
        token_log_check.scan_text(f"ok\nWARNING aiohttp: {FORGED}\n", "rsb serve")
    assert token_log_check.lines_scanned == before + 2
    assert [leak.where for leak in found] == ["rsb serve"]


def test_harmless_text_is_not_a_leak() -> None:
    check = TokenLogCheck()
    for text in ("GET /api/v1/cases 200", "eyJ alone", "session 3f2a9c0d8e7b6a5f4e3d2c1b0a"):
        assert check.find(text) is None, text
