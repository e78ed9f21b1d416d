"""The join window's checks, made before a single-use code is sent, and its terminal twin."""

from __future__ import annotations

import io

import pytest

from agent_client.cli import build_parser, default_broker
from agent_client.join_window import (
    EntryError,
    JoinFailed,
    ask_on_terminal,
    failure_for,
    read_entry,
)

BROKER = "https://support.example"


@pytest.mark.parametrize(
    ("code", "broker", "expected"),
    [
        ("123 456 7890", BROKER, (BROKER, "1234567890")),
        ("  123-456.7890 ", BROKER + "/", (BROKER, "1234567890")),
        ("https://help.example/j#1234567890", "", ("https://help.example", "1234567890")),
        ("https://help.example/j#1234567890", BROKER, (BROKER, "1234567890")),
        ("123456", "http://127.0.0.1:8080", ("http://127.0.0.1:8080", "123456")),
        ("1234567890", "http://localhost", ("http://localhost", "1234567890")),
    ],
)
def test_a_well_formed_code_and_address(code: str, broker: str, expected: tuple[str, str]) -> None:
    assert read_entry(code, broker) == expected


@pytest.mark.parametrize(
    ("code", "broker", "key"),
    [
        ("", BROKER, "code_empty"),
        ("   ", BROKER, "code_empty"),
        ("123 456 789O", BROKER, "code_not_digits"),
        ("١٢٣٤٥٦٧٨٩٠", BROKER, "code_not_digits"),  # digits, but not the ASCII ones
        ("12 34", BROKER, "code_length"),
        ("1" * 17, BROKER, "code_length"),
        ("https://help.example/x#1234567890", "", "link_bad"),
        ("https://help.example/j", "", "link_bad"),
        ("1234567890", "", "broker_missing"),
        ("1234567890", "support.example", "broker_bad"),
        ("1234567890", "ftp://support.example", "broker_bad"),
        ("1234567890", "http://support.example", "broker_http"),
    ],
)
def test_what_cannot_be_sent_says_why(code: str, broker: str, key: str) -> None:
    with pytest.raises(EntryError) as refused:
        read_entry(code, broker)
    assert refused.value.key == key
    # Every refusal has words in both languages.
    assert refused.value.text_in("en") != refused.value.text_in("es")


def test_the_length_message_counts_the_digits() -> None:
    with pytest.raises(EntryError) as refused:
        read_entry("12 34", BROKER)
    assert refused.value.text_in("es").startswith("Este código tiene 4 cifras")


@pytest.mark.parametrize(
    ("status", "key", "final"),
    [
        (410, "refused_used", False),
        (404, "refused_unknown", False),
        (422, "refused_unknown", False),
        (429, "refused_busy", False),
        (426, "outdated", True),
        (403, "refused_other", False),
    ],
)
def test_broker_refusals(status: int, key: str, final: bool) -> None:
    failure = failure_for(status, "the broker's words")
    assert (failure.key, failure.final) == (key, final)
    assert failure.text_in("es") != failure.text_in("en")


def test_the_terminal_asks_again_until_a_code_is_accepted() -> None:
    tried: list[tuple[str, str]] = []

    def attempt(broker: str, digits: str) -> str:
        tried.append((broker, digits))
        if len(tried) == 1:
            raise failure_for(410, "used")
        return "joined"

    typed = io.StringIO("12\n111 222 3333\n444 555 6666\n")
    out = io.StringIO()
    assert ask_on_terminal(BROKER, "es", attempt, input=typed, output=out) == "joined"
    assert tried == [(BROKER, "1112223333"), (BROKER, "4445556666")]
    text = out.getvalue()
    assert "Este código tiene 2 cifras" in text
    assert "Este código ya se ha usado o ha caducado" in text


def test_the_terminal_stops_when_trying_again_cannot_help() -> None:
    def attempt(broker: str, digits: str) -> str:
        raise JoinFailed("outdated", final=True)

    out = io.StringIO()
    typed = io.StringIO("1234567890\n1234567890\n")
    assert ask_on_terminal(BROKER, "en", attempt, input=typed, output=out) is None
    assert "Download it again from the support page" in out.getvalue()


def test_end_of_input_gives_up_with_nothing_shared() -> None:
    out = io.StringIO()
    assert (
        ask_on_terminal(BROKER, "en", lambda b, d: "x", input=io.StringIO(""), output=out) is None
    )
    assert "nothing was shared" in out.getvalue()


def test_join_without_a_code_parses_and_the_broker_comes_from_the_environment() -> None:
    assert build_parser().parse_args(["join"]).target is None
    assert build_parser().parse_args(["join", "--broker", BROKER]).broker == BROKER
    assert default_broker({"RSB_BROKER": BROKER}) == BROKER
    assert default_broker({}) == ""
