"""Join codes: generation, grouping, typed-input parsing, hashing and the guessing bound."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

import pytest

from broker.errors import ValidationFailed
from broker.sessions import codes
from broker.sessions.codes import (
    MAX_INPUT_CHARS,
    code_matches,
    format_code,
    generate_code,
    guess_success_bound,
    hash_code,
    parse_code,
)

PEPPER = b"p" * 32
MINUTES_10 = timedelta(minutes=10)


@pytest.mark.parametrize("digits", [6, 10, 16])
def test_generate_has_the_right_shape(digits: int) -> None:
    code = generate_code(digits)
    assert len(code) == digits and code.isascii() and code.isdigit()


def test_generate_draws_once_from_the_whole_space(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_randbelow(n: int) -> int:
        calls.append(n)
        return 42

    monkeypatch.setattr(secrets, "randbelow", fake_randbelow)
    assert generate_code(10) == "0000000042"
    assert calls == [10**10]


@pytest.mark.parametrize("digits", [0, 5, 17])
def test_generate_refuses_odd_lengths(digits: int) -> None:
    with pytest.raises(ValueError):
        generate_code(digits)


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("123456", "123 456"),
        ("1234567", "123 4567"),
        ("12345678", "123 456 78"),
        ("123456789", "123 456 789"),
        ("1234567890", "123 456 7890"),
        ("12345678901", "123 456 789 01"),
        ("1234567890123", "123 456 789 0123"),
        ("1234", "1234"),
        ("1", "1"),
    ],
)
def test_format_groups(code: str, shown: str) -> None:
    assert format_code(code) == shown


@pytest.mark.parametrize("bad", ["", "12a4", "١٢٣٤٥٦"])
def test_format_refuses_non_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        format_code(bad)


@pytest.mark.parametrize(
    "typed",
    [
        "1234567890",
        "123 456 7890",
        "123-456-7890",
        "123.456.7890",
        "  123 456 7890\n",
        "123 - 456 - 7890",
        "1 2 3 4 5 6 7 8 9 0",
    ],
)
def test_parse_forgives_separators(typed: str) -> None:
    assert parse_code(typed, 10) == "1234567890"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "123456789",
        "12345678901",
        "123_456_7890",
        "123,456,7890",
        "-1234567890",
        "1234567890.",
        "12345678o0",
        "١٢٣٤٥٦٧٨٩٠",
        "１２３４５６７８９０",
        "123\u00a0456\u00a07890",
        "1" * (MAX_INPUT_CHARS + 1),
    ],
)
def test_parse_refuses(typed: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_code(typed, 10)


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(ValidationFailed):
        parse_code(1234567890, 10)  # type: ignore[arg-type]


def test_parse_checks_its_configuration() -> None:
    with pytest.raises(ValueError):
        parse_code("123456", 3)


@pytest.mark.parametrize("digits", range(codes.MIN_DIGITS, codes.MAX_DIGITS + 1))
def test_parse_reads_what_format_shows(digits: int) -> None:
    code = generate_code(digits)
    assert parse_code(format_code(code), digits) == code


def test_hash_is_hmac_sha256_hex_under_the_pepper() -> None:
    expected = hmac.new(PEPPER, b"1234567890", hashlib.sha256).hexdigest()
    assert hash_code("1234567890", PEPPER) == expected
    assert hash_code("1234567890", b"q" * 32) != expected
    assert code_matches("1234567890", PEPPER, expected)
    assert not code_matches("1234567891", PEPPER, expected)


def test_hash_refuses_short_pepper_and_non_codes() -> None:
    with pytest.raises(ValueError, match="pepper"):
        hash_code("1234567890", b"short")
    with pytest.raises(ValueError, match="digits"):
        hash_code("12345 67890", PEPPER)


def test_guess_bound_worked_example() -> None:
    # 10 digits, 1000 open codes, 10 guesses per address per 10 minutes, codes live 10
    # minutes, 10,000 attacker addresses: 2 windows x 10 x 10,000 = 200,000 guesses.
    bound = guess_success_bound(10, 1000, 10, 10_000, MINUTES_10, MINUTES_10)
    assert bound == pytest.approx(200_000 * 1000 / 10**10)


def test_guess_bound_counts_a_burst_at_each_end_of_the_lifetime() -> None:
    one_window = guess_success_bound(10, 1, 1, 1, timedelta(minutes=9), MINUTES_10)
    assert one_window == pytest.approx(1 / 10**10)
    assert guess_success_bound(10, 1, 1, 1, MINUTES_10, MINUTES_10) == pytest.approx(2e-10)
    assert guess_success_bound(10, 1, 5, 1, MINUTES_10) == pytest.approx(5e-10)


def test_guess_bound_is_monotone_and_capped() -> None:
    low = guess_success_bound(10, 10, 10, 100, MINUTES_10, timedelta(minutes=1))
    assert guess_success_bound(10, 20, 10, 100, MINUTES_10, timedelta(minutes=1)) > low
    assert guess_success_bound(11, 10, 10, 100, MINUTES_10, timedelta(minutes=1)) < low
    assert guess_success_bound(6, 10**6, 10**6, 10**6, MINUTES_10) == 1.0
    assert guess_success_bound(10, 0, 10, 100, MINUTES_10) == 0.0


@pytest.mark.parametrize(
    "args",
    [
        (0, 1, 1, 1, MINUTES_10, None),
        (10, -1, 1, 1, MINUTES_10, None),
        (10, 1, 1, 1, timedelta(0), None),
        (10, 1, 1, 1, MINUTES_10, timedelta(0)),
    ],
)
def test_guess_bound_refuses_nonsense(
    args: tuple[int, int, int, int, timedelta, timedelta | None],
) -> None:
    with pytest.raises(ValueError):
        guess_success_bound(*args)
