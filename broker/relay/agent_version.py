"""Which agents the broker accepts: ``min_agent_version`` against the agent's User-Agent.

The agent names itself ``rsb-agent/MAJOR.MINOR.PATCH`` (``agent_client/cli.py``) in the
WebSocket handshake, so an outdated one is refused before it joins the room, with a message
the customer can act on. This is a help for customers, not a security boundary: a client that
claims a newer version, or none (a benchmark's load generator, the browser share), is let in
and treated by the same rules as any agent.
"""

from __future__ import annotations

import re

from broker.errors import AgentOutdated, ValidationFailed

__all__ = ["AGENT_PRODUCT", "check_agent_version", "parse_version"]

AGENT_PRODUCT = "rsb-agent"
_VERSION = re.compile(r"\d{1,6}(?:\.\d{1,6}){0,3}")
_AGENT = re.compile(rf"(?:^|\s){re.escape(AGENT_PRODUCT)}/(\S{{0,40}})")


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.2.10"`` -> ``(0, 2, 10)``; anything else is refused.

    Raises:
        ValidationFailed: not one to four dot-separated numbers.
    """
    if not _VERSION.fullmatch(text):
        raise ValidationFailed(f"not a version number: {text[:40]!r}")
    return tuple(int(part) for part in text.split("."))


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return version + (0,) * (4 - len(version))


def check_agent_version(user_agent: str, minimum: tuple[int, ...] | None) -> str | None:
    """The agent's version as it claims it, after checking it against ``minimum``.

    Returns:
        The version string, or None for a client that does not name itself ``rsb-agent``.

    Raises:
        AgentOutdated: an ``rsb-agent`` older than ``minimum``, or one whose version cannot
            be read (an agent too old or too broken to say it properly).
    """
    found = _AGENT.search(user_agent)
    if found is None:
        return None
    claimed = found.group(1)
    if minimum is None:
        return claimed
    wanted = ".".join(map(str, minimum))
    try:
        version = parse_version(claimed)
    except ValidationFailed:
        version = ()
    if _padded(version) < _padded(minimum):
        raise AgentOutdated(
            f"this agent ({claimed or 'unknown version'}) is older than {wanted}, the oldest "
            "this support desk accepts: download the agent again from the support page",
            version=claimed,
            minimum=wanted,
        )
    return claimed
