"""Which agents the relay accepts (``min_agent_version``), without a socket."""

from __future__ import annotations

import pytest

from broker.errors import AgentOutdated, ValidationFailed
from broker.relay.agent_version import check_agent_version, parse_version
from broker.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("user_agent", "minimum", "seen"),
    [
        ("rsb-agent/0.2.0", (0, 2, 0), "0.2.0"),  # exactly the minimum
        ("rsb-agent/0.10.0", (0, 9), "0.10.0"),  # numbers, not strings: 10 > 9
        ("rsb-agent/1", (0, 9, 9), "1"),
        ("rsb-agent/0.1.0", None, "0.1.0"),  # no minimum configured
        ("Python/3.13 aiohttp/3.11", (9, 0), None),  # not our agent: not checked
        ("", (9, 0), None),
    ],
)
def test_accepted(user_agent: str, minimum: tuple[int, ...] | None, seen: str | None) -> None:
    assert check_agent_version(user_agent, minimum) == seen


@pytest.mark.parametrize(
    "user_agent",
    ["rsb-agent/0.1.9", "rsb-agent/0.1", "rsb-agent/", "rsb-agent/banana", "x rsb-agent/0.0.1"],
)
def test_older_or_unreadable_is_refused_with_a_message_for_the_customer(user_agent: str) -> None:
    with pytest.raises(AgentOutdated, match="download the agent again") as refused:
        check_agent_version(user_agent, (0, 2))
    assert refused.value.close_code == 4105 and refused.value.http_status == 426


@pytest.mark.parametrize("text", ["", "1.", "a.b", "1.2.3.4.5", "1" * 7, "-1"])
def test_parse_version_refuses_what_is_not_a_version(text: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_version(text)


def test_the_setting_parses_and_refuses() -> None:
    assert Settings.from_mapping({"min_agent_version": "0.2.1"}).min_agent_version == (0, 2, 1)
    assert Settings.from_mapping({"min_agent_version": ""}).min_agent_version is None
    with pytest.raises(SettingsError, match="min_agent_version"):
        Settings.from_mapping({"min_agent_version": "two"})
