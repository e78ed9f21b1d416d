"""Shared vocabulary of the broker: identifiers, roles, levels and consent permissions.

Identifiers are ``NewType``s so that a case number cannot be passed where a session id is
expected; each is validated once, at the edge where it enters the system.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NewType

CaseNumber = NewType("CaseNumber", str)
"""A case's number, generated (``C-000123``) or given by an external ticketing system."""

SessionId = NewType("SessionId", str)
"""Opaque random id of one remote-support session (URL-safe, 22 characters)."""

ParticipantId = NewType("ParticipantId", str)
"""Who takes part in a session: a staff user name, or ``customer`` / ``agent``."""

UserName = NewType("UserName", str)
"""Login name of a staff user."""


class Role(StrEnum):
    """Staff roles. ``desk``/``rse``/``engineering`` are the support levels L1/L2/L3."""

    DESK = "desk"
    RSE = "rse"
    ENGINEERING = "engineering"
    SECURITY = "security"
    ADMIN = "admin"


class Level(StrEnum):
    """Escalation levels shown to the customer next to an engineer's name."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"


ROLE_LEVEL: dict[Role, Level | None] = {
    Role.DESK: Level.L1,
    Role.RSE: Level.L2,
    Role.ENGINEERING: Level.L3,
    Role.SECURITY: None,
    Role.ADMIN: None,
}


class Permission(StrEnum):
    """What a customer can consent to, per participant."""

    VIEW = "view"
    CONTROL = "control"
    CLIPBOARD = "clipboard"
    FILES = "files"
    SYSTEM_INFO = "system_info"


SEVERITY_LABELS: dict[int, str] = {
    1: "catastrophic: system down, no production",
    2: "severe: up, production seriously degraded",
    3: "moderate: up, production reduced",
    4: "low: no significant impact, how-to or request",
}
