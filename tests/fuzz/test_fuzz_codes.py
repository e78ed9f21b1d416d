"""Fuzz the join-code parser: accepted as exactly ``digits`` ASCII digits, or ValidationFailed."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from broker.errors import ValidationFailed
from broker.sessions.codes import MAX_DIGITS, MIN_DIGITS, format_code, generate_code, parse_code

DIGITS = st.integers(MIN_DIGITS, MAX_DIGITS)
TYPED_ALPHABET = "0123456789 .-_,\t\n\u00a0\u0660\uff10oOlI"


def check_parse(text: Any, digits: int) -> None:
    try:
        code = parse_code(cast(str, text), digits)
    except ValidationFailed:
        return
    assert len(code) == digits and all(c in "0123456789" for c in code)


@given(text=st.text(max_size=200), digits=DIGITS)
def test_parse_arbitrary_text(text: str, digits: int) -> None:
    check_parse(text, digits)


@given(text=st.text(alphabet=TYPED_ALPHABET, max_size=80), digits=DIGITS)
def test_parse_nearly_typed_codes(text: str, digits: int) -> None:
    check_parse(text, digits)


@given(value=st.binary(max_size=40) | st.none() | st.integers() | st.floats(), digits=DIGITS)
def test_parse_non_strings(value: object, digits: int) -> None:
    check_parse(value, digits)


@given(
    digits=DIGITS,
    separators=st.lists(st.sampled_from(["", " ", "-", ".", " - ", ".."]), min_size=16),
    padding=st.sampled_from(["", " ", "\n", "\t "]),
)
def test_separators_between_digits_are_forgiven(
    digits: int, separators: list[str], padding: str
) -> None:
    code = generate_code(digits)
    typed = code[0] + "".join(sep + c for sep, c in zip(separators, code[1:], strict=False))
    if len(padding + typed + padding) <= 64:
        assert parse_code(padding + typed + padding, digits) == code


@given(digits=DIGITS)
def test_formatted_codes_parse_back(digits: int) -> None:
    code = generate_code(digits)
    assert parse_code(format_code(code), digits) == code
