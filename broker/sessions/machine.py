"""Session state machine: who may see and who may drive one remote-support session.

Pure: no I/O, no clock, no logging. ``apply(state, event, resume_window=...)`` is the only way a
session changes (h11's Rule 1: every rule that changes a session lives in this file). It returns
the next frozen ``SessionState`` and the effects the service shell must carry out: audit
records, consent prompts for the customer and notices to engineers. The
state's inert data types live in ``participants.py`` and are re-exported here.

Theory of operation
-------------------
Each event type has one handler in ``TRANSITIONS``; an event without a rule raises
``InvalidTransition``, and because states are immutable the caller's state is untouched. Time
enters only through each event's ``at``: before any handler runs, engineers disconnected for
longer than ``resume_window`` are dropped with their grants, and an agent gone that long ends
the session (``"agent_lost"``). ``Tick`` does nothing else, so the shell calls it to let time pass.
Joining asks the customer for VIEW at once (when the agent is connected, else when it connects);
every other permission is asked for with ``ConsentRequested`` while VIEW is held. The phase, the
controller and the viewers are derived from the participants' grants, never stored, so they
cannot disagree. Invariants, checked by ``tests/unit/test_machine_stateful.py``:

1. A grant exists only because a ``ConsentGranted`` from the customer's side answered a pending
   request of that same participant; re-joining starts with no grants (fresh consent).
2. Every grant or request other than VIEW implies VIEW is held; losing VIEW loses them all.
3. At most one participant holds CONTROL, and that participant is the controller. Granting
   control to B while A holds it moves it: A loses CONTROL and is told (``Notify``).
4. A paused session keeps its grants but nobody may receive frames or send input.
5. ENDED is terminal: grants are cleared, and only ``ConsentRevoked`` and ``Tick`` are
   accepted afterwards, as no-ops. Revocation never raises, whatever the state.
6. The holder (the engineer who has the session in hand, named to the customer) is always a
   participant or nobody. Joining makes you the holder when nobody present holds it, an
   accepted invitation or granted control makes you the holder at once, and when the holder
   leaves (or is dropped) the next connected engineer holds it, else nobody (``NewHolder``).

``docs/security.md`` ("Consent state machine") states these rules for users.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from broker.audit.actions import AuditAction
from broker.errors import InvalidTransition, ValidationFailed
from broker.sessions.participants import Participant as Participant
from broker.sessions.participants import Phase as Phase
from broker.sessions.participants import SessionState as SessionState
from broker.types import Level, ParticipantId, Permission
from rsb_protocol.messages import CONSENT_REASON_MAX

ConsentSource = Literal["customer", "agent"]
"""Who may answer a consent prompt. Engineers never can: the caller maps the sender."""

AGENT_LOST = "agent_lost"
RESERVED_IDS = frozenset({"customer", "agent"})
VIEW, CONTROL = Permission.VIEW, Permission.CONTROL


# Events. Each carries the time it happened; the machine never reads a clock. Shape errors are
# caught at construction (ValidationFailed); errors of timing or state by apply().


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValidationFailed(message)


@dataclass(frozen=True, kw_only=True)
class Event:
    at: datetime
    kind: ClassVar[str] = "event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


@dataclass(frozen=True)
class _ByEngineer(Event):
    pid: ParticipantId


@dataclass(frozen=True)
class _ForPermission(_ByEngineer):
    permission: Permission


@dataclass(frozen=True)
class _Answer(_ForPermission):
    by: ConsentSource

    def __post_init__(self) -> None:
        _require(self.by in ("customer", "agent"), "only the customer or agent answers consent")


class AgentConnected(Event):
    """The customer's agent connected, or reconnected within the resume window."""


class AgentDisconnected(Event):
    """The agent's connection dropped; the session ends if it is not back within the window."""


@dataclass(frozen=True)
class EngineerJoined(_ByEngineer):
    """An engineer joined; this also asks the customer for VIEW.

    ``invited``: the engineer came on an invitation (the shell accepted it), so the session
    is handed over to them.
    """

    display_name: str
    level: Level | None
    invited: bool = False

    def __post_init__(self) -> None:
        _require(bool(self.pid) and self.pid not in RESERVED_IDS, "invalid participant id")
        _require(bool(self.display_name.strip()), "display name must not be empty")


class EngineerLeft(_ByEngineer):
    """An engineer left on purpose: grants go at once."""


class EngineerDisconnected(_ByEngineer):
    """An engineer's connection dropped: grants are kept for the resume window."""


class EngineerReconnected(_ByEngineer):
    """Resume within the window: grants are kept and the customer is not asked again."""


@dataclass(frozen=True)
class ConsentRequested(_ForPermission):
    """An engineer asks for a permission (VIEW is asked for on joining), saying why.

    ``reason`` is shown to the customer as is, so it must already be one printable line of at
    most ``CONSENT_REASON_MAX`` characters (``rsb_protocol.messages.clean_text`` makes it so).
    """

    reason: str = ""

    def __post_init__(self) -> None:
        _require(len(self.reason) <= CONSENT_REASON_MAX, "the reason is too long")
        _require(self.reason.isprintable(), "the reason must be one line of printable text")


class ConsentGranted(_Answer):
    """The customer said yes to a pending request: the only way any grant comes to exist."""


class ConsentRefused(_Answer):
    """The customer said no to a pending request."""


class ConsentRevoked(_Answer):
    """The customer withdraws a grant or a pending request. Always accepted, even after end."""


class Released(_ForPermission):
    """An engineer gives up a grant of their own."""


class Paused(Event):
    """The customer paused sharing: no frames and no input, grants kept."""


class Resumed(Event):
    """The customer resumed sharing."""


@dataclass(frozen=True)
class Ended(Event):
    by: str
    reason: str


class Tick(Event):
    """Lets time pass: expires disconnected engineers and a lost agent."""


# Effects, carried out by the shell in order.


@dataclass(frozen=True)
class Audit:
    action: AuditAction
    details: Mapping[str, Any]


@dataclass(frozen=True)
class AskCustomer:
    pid: ParticipantId
    display_name: str
    level: Level | None
    permission: Permission
    reason: str = ""


@dataclass(frozen=True)
class Notify:
    """Tell one engineer what happened to their consent (``what`` is a short code)."""

    pid: ParticipantId
    what: str
    permission: Permission | None = None


@dataclass(frozen=True)
class StateChanged:
    phase: Phase


@dataclass(frozen=True)
class NewHolder:
    """The engineer who has the session in hand changed (None: nobody now); record it."""

    pid: ParticipantId | None
    display_name: str | None
    level: Level | None


Effect = Audit | AskCustomer | Notify | StateChanged | NewHolder


@dataclass(frozen=True)
class Transition:
    state: SessionState
    effects: tuple[Effect, ...]


_Step = tuple[SessionState, list[Effect]]


# Helpers shared by the rules.


def _get(state: SessionState, pid: ParticipantId) -> Participant:
    found = state.participant(pid)
    if found is None:
        raise InvalidTransition(f"{pid!r} is not in this session", pid=pid)
    return found


def _put(state: SessionState, new: Participant) -> SessionState:
    people = tuple(new if p.pid == new.pid else p for p in state.participants)
    return replace(state, participants=people)


def _unask(p: Participant, perms: frozenset[Permission]) -> Participant:
    """``p`` without the pending requests for ``perms`` (and their reasons)."""
    reasons = tuple((q, why) for q, why in p.reasons if q not in perms)
    return replace(p, requested=p.requested - perms, reasons=reasons)


def _take(state: SessionState, pid: ParticipantId, perm: Permission, reason: str) -> _Step:
    """Remove a grant and its pending request; losing VIEW loses everything (invariant 2)."""
    p = _get(state, pid)
    removed = p.grants if perm is VIEW else p.grants & {perm}
    withdrawn = p.requested if perm is VIEW else p.requested & {perm}
    state = _put(state, replace(_unask(p, withdrawn), grants=p.grants - removed))
    fx: list[Effect] = []
    if CONTROL in removed:
        fx.append(Audit(AuditAction.SESSION_CONTROL_REVOKED, {"pid": pid, "reason": reason}))
    return state, fx


def _remove(state: SessionState, pid: ParticipantId, reason: str) -> _Step:
    state, fx = _take(state, pid, VIEW, reason)
    people = tuple(p for p in state.participants if p.pid != pid)
    holder = state.holder
    if holder == pid:  # invariant 6: handed to the next engineer still here, or nobody
        holder = next((p.pid for p in people if p.connected), None)
    return replace(state, participants=people, holder=holder), fx


def _holding(state: SessionState) -> bool:
    """Someone connected has the session in hand."""
    p = state.participant(state.holder) if state.holder is not None else None
    return p is not None and p.connected


def _end(state: SessionState, by: str, reason: str) -> _Step:
    fx: list[Effect] = []
    for p in state.participants:
        state, more = _take(state, p.pid, VIEW, "ended")
        fx += more
    fx.append(Audit(AuditAction.SESSION_ENDED, {"by": by, "reason": reason}))
    return replace(state, ended=True, end_reason=reason), fx


def _expired(since: datetime | None, now: datetime, window: timedelta) -> bool:
    return since is not None and now - since > window


def _sweep(state: SessionState, now: datetime, window: timedelta) -> _Step:
    fx: list[Effect] = []
    if state.ended:
        return state, fx
    for p in state.participants:
        if _expired(p.disconnected_at, now, window):
            state, more = _remove(state, p.pid, "resume_window_expired")
            fx += [*more, Audit(AuditAction.SESSION_PARTICIPANT_DROPPED, {"pid": p.pid})]
    if _expired(state.agent_disconnected_at, now, window):
        state, more = _end(state, "broker", AGENT_LOST)
        fx += more
    return state, fx


def _ask(state: SessionState, p: Participant, perm: Permission) -> list[Effect]:
    # Prompts live on the agent; if it is away they are re-sent when it reconnects.
    if not state.agent_connected:
        return []
    return [AskCustomer(p.pid, p.display_name, p.level, perm, p.reason_for(perm))]


# The rules, one per event type.


def _agent_connected(state: SessionState, e: AgentConnected) -> _Step:
    if state.agent_connected:
        raise InvalidTransition("the agent is already connected")
    resumed = state.agent_disconnected_at is not None
    state = replace(state, agent_connected=True, agent_disconnected_at=None)
    action = AuditAction.SESSION_AGENT_RESUMED if resumed else AuditAction.SESSION_AGENT_CONNECTED
    fx: list[Effect] = [Audit(action, {})]
    for p in state.participants:
        for perm in sorted(p.requested):
            fx += _ask(state, p, perm)
    return state, fx


def _agent_disconnected(state: SessionState, e: AgentDisconnected) -> _Step:
    if not state.agent_connected:
        raise InvalidTransition("the agent is not connected")
    state = replace(state, agent_connected=False, agent_disconnected_at=e.at)
    return state, [Audit(AuditAction.SESSION_AGENT_DISCONNECTED, {})]


def _engineer_joined(state: SessionState, e: EngineerJoined) -> _Step:
    if state.participant(e.pid) is not None:
        raise InvalidTransition(f"{e.pid!r} is already in this session", pid=e.pid)
    p = Participant(e.pid, e.display_name, e.level, requested=frozenset({VIEW}))
    holder = e.pid if e.invited or not _holding(state) else state.holder
    state = replace(state, participants=(*state.participants, p), holder=holder)
    details = {"pid": e.pid, "display_name": e.display_name, "level": e.level}
    return state, [Audit(AuditAction.SESSION_PARTICIPANT_JOINED, details), *_ask(state, p, VIEW)]


def _engineer_left(state: SessionState, e: EngineerLeft) -> _Step:
    state, fx = _remove(state, e.pid, "left")
    return state, [*fx, Audit(AuditAction.SESSION_PARTICIPANT_LEFT, {"pid": e.pid})]


def _engineer_disconnected(state: SessionState, e: EngineerDisconnected) -> _Step:
    p = _get(state, e.pid)
    if not p.connected:
        raise InvalidTransition(f"{e.pid!r} is already disconnected", pid=e.pid)
    state = _put(state, replace(p, connected=False, disconnected_at=e.at))
    return state, [Audit(AuditAction.SESSION_PARTICIPANT_DISCONNECTED, {"pid": e.pid})]


def _engineer_reconnected(state: SessionState, e: EngineerReconnected) -> _Step:
    p = _get(state, e.pid)
    if p.connected:
        raise InvalidTransition(f"{e.pid!r} is already connected", pid=e.pid)
    state = _put(state, replace(p, connected=True, disconnected_at=None))
    if not _holding(state):
        state = replace(state, holder=e.pid)
    details = {"pid": e.pid, "grants": sorted(p.grants)}
    return state, [Audit(AuditAction.SESSION_PARTICIPANT_RESUMED, details)]


def _consent_requested(state: SessionState, e: ConsentRequested) -> _Step:
    p, perm = _get(state, e.pid), e.permission
    if not p.connected:
        raise InvalidTransition(f"{e.pid!r} is disconnected", pid=e.pid)
    if perm in p.grants or perm in p.requested:
        raise InvalidTransition(f"{perm} is already held or pending for {e.pid!r}", pid=e.pid)
    if perm is not VIEW and VIEW not in p.grants:
        raise InvalidTransition(f"{perm} needs VIEW consent first", pid=e.pid)
    reasons = (*((q, why) for q, why in p.reasons if q is not perm), (perm, e.reason))
    p = replace(p, requested=p.requested | {perm}, reasons=reasons)
    state = _put(state, p)
    details = {"pid": e.pid, "permission": perm, "reason": e.reason}
    audit = Audit(AuditAction.SESSION_CONSENT_REQUESTED, details)
    return state, [audit, *_ask(state, p, perm)]


def _consent_granted(state: SessionState, e: ConsentGranted) -> _Step:
    p, perm = _get(state, e.pid), e.permission
    if perm not in p.requested:
        raise InvalidTransition(f"{e.pid!r} did not request {perm}", pid=e.pid)
    fx: list[Effect] = []
    holder = state.controller
    if perm is CONTROL and holder is not None:
        state, fx = _take(state, holder, CONTROL, "moved")
        fx.append(Notify(holder, "control_moved", CONTROL))
    state = _put(state, replace(_unask(p, frozenset({perm})), grants=p.grants | {perm}))
    if perm is CONTROL:
        state = replace(state, holder=e.pid)  # whoever drives has the session in hand
        fx.append(Audit(AuditAction.SESSION_CONTROL_GRANTED, {"pid": e.pid, "by": e.by}))
    else:
        details = {"pid": e.pid, "permission": perm, "by": e.by}
        fx.append(Audit(AuditAction.SESSION_CONSENT_GRANTED, details))
    return state, [*fx, Notify(e.pid, "consent_granted", perm)]


def _consent_refused(state: SessionState, e: ConsentRefused) -> _Step:
    p, perm = _get(state, e.pid), e.permission
    if perm not in p.requested:
        raise InvalidTransition(f"{e.pid!r} did not request {perm}", pid=e.pid)
    state = _put(state, _unask(p, frozenset({perm})))
    audit = Audit(
        AuditAction.SESSION_CONSENT_REFUSED, {"pid": e.pid, "permission": perm, "by": e.by}
    )
    return state, [audit, Notify(e.pid, "consent_refused", perm)]


def _consent_revoked(state: SessionState, e: ConsentRevoked) -> _Step:
    # Never raises: consent the customer cannot withdraw at once, in any state, is no consent.
    p, perm = state.participant(e.pid), e.permission
    if p is None or (perm not in p.grants and perm not in p.requested):
        return state, []
    state, fx = _take(state, e.pid, perm, "revoked")
    if not (perm is CONTROL and CONTROL in p.grants):  # control_revoked already says it
        fx.append(Audit(AuditAction.SESSION_CONSENT_REVOKED, {"pid": e.pid, "permission": perm}))
    return state, [*fx, Notify(e.pid, "consent_revoked", perm)]


def _released(state: SessionState, e: Released) -> _Step:
    p, perm = _get(state, e.pid), e.permission
    if perm not in p.grants:
        raise InvalidTransition(f"{e.pid!r} does not hold {perm}", pid=e.pid)
    state, fx = _take(state, e.pid, perm, "released")
    if perm is not CONTROL:
        fx.append(Audit(AuditAction.SESSION_CONSENT_RELEASED, {"pid": e.pid, "permission": perm}))
    return state, fx


def _paused(state: SessionState, e: Paused) -> _Step:
    if state.paused:
        raise InvalidTransition("the session is already paused")
    return replace(state, paused=True), [Audit(AuditAction.SESSION_PAUSED, {})]


def _resumed(state: SessionState, e: Resumed) -> _Step:
    if not state.paused:
        raise InvalidTransition("the session is not paused")
    return replace(state, paused=False), [Audit(AuditAction.SESSION_RESUMED, {})]


def _ended(state: SessionState, e: Ended) -> _Step:
    return _end(state, e.by, e.reason)


def _tick(state: SessionState, e: Tick) -> _Step:
    return state, []  # the expiry sweep in apply() did the work


TRANSITIONS: Mapping[type[Event], Callable[[SessionState, Any], _Step]] = MappingProxyType(
    {
        AgentConnected: _agent_connected,
        AgentDisconnected: _agent_disconnected,
        EngineerJoined: _engineer_joined,
        EngineerLeft: _engineer_left,
        EngineerDisconnected: _engineer_disconnected,
        EngineerReconnected: _engineer_reconnected,
        ConsentRequested: _consent_requested,
        ConsentGranted: _consent_granted,
        ConsentRefused: _consent_refused,
        ConsentRevoked: _consent_revoked,
        Released: _released,
        Paused: _paused,
        Resumed: _resumed,
        Ended: _ended,
        Tick: _tick,
    }
)
AFTER_END: frozenset[type[Event]] = frozenset({ConsentRevoked, Tick})
"""The only events accepted once a session has ended; both are then no-ops."""


def apply(state: SessionState, event: Event, *, resume_window: timedelta) -> Transition:
    """Apply one event to a session.

    Args:
        state: the current state (never modified).
        event: what happened, stamped with the time it happened.
        resume_window: how long a disconnected engineer or agent may take to come back.

    Returns:
        The next state and the effects to carry out, in order.

    Raises:
        InvalidTransition: no rule accepts this event in this state. ``ConsentRevoked`` and
            ``Tick`` never raise.
    """
    rule = TRANSITIONS.get(type(event))
    if rule is None:
        raise InvalidTransition(f"no rule for {type(event).__name__}")
    swept, fx = _sweep(state, event.at, resume_window)
    if swept.ended and type(event) not in AFTER_END:
        raise InvalidTransition(f"the session has ended ({swept.end_reason}); {event.kind} refused")
    new, more = rule(swept, event)
    effects = [*fx, *more]
    if new.phase is not state.phase:
        effects.append(StateChanged(new.phase))
    if new.holder != state.holder:
        holder = new.participant(new.holder) if new.holder is not None else None
        name, level = (holder.display_name, holder.level) if holder else (None, None)
        effects.append(NewHolder(new.holder, name, level))
    return Transition(new, tuple(effects))


def may_receive_frames(state: SessionState, pid: ParticipantId) -> bool:
    """Whether ``pid`` may be sent screen frames right now (holds VIEW, nothing paused)."""
    p = state.participant(pid)
    return (
        p is not None
        and p.connected
        and VIEW in p.grants
        and state.agent_connected
        and not state.paused
        and not state.ended
    )


def may_send_input(state: SessionState, pid: ParticipantId) -> bool:
    """Whether input from ``pid`` may reach the customer's machine: only the one controller."""
    return (
        state.controller == pid
        and may_receive_frames(state, pid)  # connected, VIEW, agent here, not paused or ended
    )


def frames_allowed(state: SessionState) -> bool:
    """Whether the agent may capture and send frames at all: someone may receive them."""
    return any(may_receive_frames(state, p.pid) for p in state.participants)
