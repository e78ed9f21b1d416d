"""Close codes, written once: what each means, what a client does next, and valid close reasons.

``close_reason`` is held to RFC 6455 §5.5: at most 123 bytes after the code, valid UTF-8. The
reasons here are the ones that broke the old byte cut: accented text and emoji longer than the
limit, where cutting at a fixed byte count lands inside a character.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import broker.errors
from rsb_protocol.close_codes import (
    AFTER_CLOSE,
    CLOSE_CODE_EXPLANATIONS,
    CLOSE_REASON_MAX,
    AfterClose,
    CloseCode,
    StandardCloseCode,
    after_close,
    close_reason,
)


def test_the_broker_names_the_protocols_codes() -> None:
    assert broker.errors.CloseCode is CloseCode
    assert broker.errors.CLOSE_CODE_EXPLANATIONS is CLOSE_CODE_EXPLANATIONS
    assert broker.errors.RelayError.close_code == CloseCode.RELAY_UNAVAILABLE
    assert broker.errors.Overloaded.close_code == StandardCloseCode.TRY_AGAIN_LATER


def test_every_code_is_explained_and_private_codes_are_in_their_range() -> None:
    for code in [*CloseCode, *StandardCloseCode]:
        assert CLOSE_CODE_EXPLANATIONS[code], code
    assert set(CLOSE_CODE_EXPLANATIONS) == {*CloseCode, *StandardCloseCode}
    assert all(4000 <= code < 5000 for code in CloseCode)
    assert all(1000 <= code < 1016 for code in StandardCloseCode)


def test_what_a_client_does_after_each_code() -> None:
    assert after_close(CloseCode.SESSION_ENDED) is AfterClose.ENDED
    refused = {code for code in CloseCode if after_close(code) is AfterClose.REFUSED}
    assert refused == {4001, 4003, 4004, 4005, 4006, 4007, 4404}
    resumed = {
        code for code in [*CloseCode, *StandardCloseCode] if after_close(code) is AfterClose.RESUME
    }
    assert resumed == {1001, 1006, 4200, 4201}
    assert after_close(None) is AfterClose.RESUME  # dropped without a close frame, as 1006
    assert after_close(CloseCode.RATE_LIMITED) is AfterClose.BACK_OFF
    assert after_close(StandardCloseCode.TRY_AGAIN_LATER) is AfterClose.BACK_OFF
    # Replaced, bad message, wrong version: the same connection again would meet the same fate.
    for code in (
        CloseCode.REPLACED,
        CloseCode.BAD_MESSAGE,
        CloseCode.UNSUPPORTED_VERSION,
        CloseCode.AGENT_OUTDATED,  # the same agent again would be refused again
    ):
        assert after_close(code) is AfterClose.FAILED
    assert after_close(4999) is AfterClose.FAILED  # a newer broker's private code
    assert after_close(StandardCloseCode.PROTOCOL_ERROR) is AfterClose.FAILED
    for other in (1000, 1011, 3000):
        assert after_close(other) is AfterClose.OTHER
    assert set(AFTER_CLOSE) <= set(CLOSE_CODE_EXPLANATIONS)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("é" * 300, "é" * 61),  # 2 bytes each: 61 of them are 122 bytes, a 62nd would be 124
        ("a" + "é" * 300, "a" + "é" * 61),  # 123 bytes exactly
        ("😀" * 40, "😀" * 30),  # 4 bytes each: 120 bytes, a 31st would be 124
        ("ab" + "€" * 50, "ab" + "€" * 40),  # 3 bytes each: 2 + 120
        ("session ended: " + "¿Qué pasó? " * 30, None),
        ("short", "short"),
        ("", ""),
    ],
)
def test_long_accented_and_emoji_reasons_are_cut_between_characters(
    text: str, kept: str | None
) -> None:
    data = close_reason(text)
    decoded = data.decode("utf-8")  # raises if the cut split a character
    assert len(data) <= CLOSE_REASON_MAX
    assert text.startswith(decoded)
    if kept is not None:
        assert decoded == kept
    if decoded != text:
        assert len(text[: len(decoded) + 1].encode()) > CLOSE_REASON_MAX


def test_a_lone_surrogate_from_json_still_gives_valid_utf8() -> None:
    assert close_reason("why\ud800 not") == b"why? not"


def test_the_limit_is_the_rfcs_at_most() -> None:
    assert close_reason("ééé", 3) == "é".encode()
    assert close_reason("ééé", 0) == b""
    with pytest.raises(ValueError):
        close_reason("x", CLOSE_REASON_MAX + 1)
    with pytest.raises(ValueError):
        close_reason("x", -1)


@given(st.text(), st.integers(0, CLOSE_REASON_MAX))
def test_any_reason_becomes_the_longest_valid_prefix_that_fits(text: str, limit: int) -> None:
    data = close_reason(text, limit)
    encoded = text.encode("utf-8", "replace")
    assert len(data) <= limit
    assert encoded.startswith(data)
    decoded = data.decode("utf-8")
    if len(data) < len(encoded):
        next_char = encoded.decode("utf-8")[len(decoded)]
        assert len(data) + len(next_char.encode()) > limit
