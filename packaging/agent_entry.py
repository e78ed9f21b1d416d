"""Entry point of the single-file agent (``packaging/agent.spec``): ``rsb-agent`` without Python.

The frozen agent is the installed ``rsb-agent`` (``agent_client.cli:main``) and nothing more,
but for one non-secret default baked in at build time: the broker's address
(``build_agent.py --broker-url``), so that ``join CODE`` works without ``--broker``. The file
carries no token and no key: a session's credentials come from the code the customer types,
exchanged at run time (docs/agent.md, "The single-file agent").
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

DEFAULTS_FILE = "agent_defaults.json"
"""Bundled next to the code: ``{"broker": URL}`` or ``{}`` (written by ``build_agent.py``)."""


def load_defaults(folder: str) -> dict[str, str]:
    """The bundled defaults; an unreadable or malformed file counts as none."""
    try:
        with open(os.path.join(folder, DEFAULTS_FILE), encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def with_default_broker(argv: Sequence[str], broker: str | None) -> list[str]:
    """``argv`` with ``--broker BROKER`` added to a ``join`` that names no broker itself.

    A ``--broker`` given by the customer wins, and a join link names its own broker; every
    other command is left as it is (``attach`` must be told where to go by the page).
    """
    args = list(argv)
    if not broker or not args or args[0] != "join":
        return args
    if any(a == "--broker" or a.startswith("--broker=") or "://" in a for a in args[1:]):
        return args
    return [*args, "--broker", broker]


def main() -> int:
    folder = getattr(sys, "_MEIPASS", os.path.dirname(os.path.abspath(__file__)))
    from agent_client.cli import main as agent_main

    return agent_main(with_default_broker(sys.argv[1:], load_defaults(folder).get("broker")))


if __name__ == "__main__":
    sys.exit(main())
