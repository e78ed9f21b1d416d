"""Every error the broker can give the customer page reads in English and Spanish.

The broker's error codes (``broker/errors.py``, plus the codes the error middleware gives plain
HTTP errors) and every WebSocket close code (``rsb_protocol/close_codes.py``) must each have a
key in ``web/js/customer-errors.js`` (close codes by their name in ``wire.js``) and a text in
both languages of ``web/js/i18n.js``; a new error class or close code without texts fails.
"""

from __future__ import annotations

import re

import broker.app  # noqa: F401  (imports every module that defines an error class)
import broker.errors
from broker.api.middleware import _HTTP_CODES
from rsb_protocol.close_codes import CloseCode, StandardCloseCode
from tests.unit.test_i18n import WEB, _tables

MAPPING = re.compile(r'^  ([a-z_]+): "(error\.[a-z0-9_]+)",$')

EXTRA_CODES = {"internal_error", "http_error", "unreachable"}
"""Codes no error class carries: the middleware's answer to a crash, api.js's fallback for a
non-JSON error, and api.js's status-0 error when the broker cannot be reached."""


def _error_codes() -> set[str]:
    found: set[str] = set()
    pending: list[type[broker.errors.BrokerError]] = [broker.errors.BrokerError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)
        pending.extend(cls.__subclasses__())
    return found | set(_HTTP_CODES.values()) | EXTRA_CODES


def _mappings() -> dict[str, str]:
    errors: dict[str, str] = {}
    text = (WEB / "js" / "customer-errors.js").read_text(encoding="utf-8")
    for line in text.splitlines():
        if match := MAPPING.match(line):
            errors[match.group(1)] = match.group(2)
    return errors


def test_every_broker_error_code_has_a_text_in_both_languages() -> None:
    tables = _tables()
    errors = _mappings()
    codes = _error_codes()
    assert {"code_rejected", "rate_limited", "token_expired", "conflict"} <= codes
    assert codes - set(errors) == set(), "codes customer-errors.js does not map"
    for code in codes:
        assert errors[code] == f"error.{code}"
        for language in ("en", "es"):
            assert tables[language].get(errors[code]), (language, code)
    assert tables["en"]["error.code_rejected"] != tables["es"]["error.code_rejected"]


def test_every_close_code_has_a_text_in_both_languages() -> None:
    # customer-errors.js names each code as wire.js does: close.<name in lower case>.
    tables = _tables()
    codes = [*CloseCode, *StandardCloseCode]
    assert len(codes) > 30
    for code in codes:
        for language in ("en", "es"):
            assert tables[language].get(f"close.{code.name.lower()}"), (language, code)


def test_the_fallbacks_exist_in_both_languages() -> None:
    tables = _tables()
    for key in ("error.other", "close.other"):
        assert tables["en"][key] and tables["es"][key]
