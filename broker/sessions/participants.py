"""The data of one session: its participants, their consents, and the phase derived from them.

Pure and inert: nothing here changes a session; every rule that does lives in
``broker.sessions.machine``. The controller, the viewers and the phase are computed from the
participants' grants rather than stored, so they can never disagree with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from broker.types import CaseNumber, Level, ParticipantId, Permission, SessionId


class Phase(StrEnum):
    """The session's phase, derived from its state (see ``SessionState.phase``)."""

    WAITING = "waiting"  # the agent is not connected
    PENDING_CONSENT = "pending_consent"  # agent connected, nobody may view yet
    OBSERVING = "observing"  # at least one engineer holds VIEW
    CONTROLLING = "controlling"  # one engineer holds CONTROL
    PAUSED = "paused"  # the customer paused sharing; grants are kept
    ENDED = "ended"  # terminal


@dataclass(frozen=True)
class Participant:
    """One engineer in the session, with the consents granted to and requested by them."""

    pid: ParticipantId
    display_name: str
    level: Level | None
    connected: bool = True
    disconnected_at: datetime | None = None
    grants: frozenset[Permission] = frozenset()
    requested: frozenset[Permission] = frozenset()
    reasons: tuple[tuple[Permission, str], ...] = ()
    """Why each pending request was made, as the engineer said it (shown to the customer)."""

    def reason_for(self, permission: Permission) -> str:
        """The reason given for the pending request of ``permission`` ("" if none)."""
        return next((why for perm, why in self.reasons if perm is permission), "")


@dataclass(frozen=True)
class SessionState:
    """Everything the rules need about one session. Build with ``new``, change with ``apply``."""

    session_id: SessionId
    case_number: CaseNumber
    agent_connected: bool = False
    agent_disconnected_at: datetime | None = None
    paused: bool = False
    ended: bool = False
    end_reason: str | None = None
    participants: tuple[Participant, ...] = ()
    holder: ParticipantId | None = None
    """The engineer who has the session in hand, named to the customer (machine rule 6)."""

    @classmethod
    def new(cls, session_id: SessionId, case_number: CaseNumber) -> SessionState:
        return cls(session_id=session_id, case_number=case_number)

    def participant(self, pid: ParticipantId) -> Participant | None:
        return next((p for p in self.participants if p.pid == pid), None)

    @property
    def controller(self) -> ParticipantId | None:
        return next((p.pid for p in self.participants if Permission.CONTROL in p.grants), None)

    @property
    def viewers(self) -> frozenset[ParticipantId]:
        return frozenset(p.pid for p in self.participants if Permission.VIEW in p.grants)

    @property
    def phase(self) -> Phase:
        if self.ended:
            return Phase.ENDED
        if not self.agent_connected:
            return Phase.WAITING
        if self.paused:
            return Phase.PAUSED
        if self.controller is not None:
            return Phase.CONTROLLING
        return Phase.OBSERVING if self.viewers else Phase.PENDING_CONSENT
