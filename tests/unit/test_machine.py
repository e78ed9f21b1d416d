"""Examples for the session state machine: one test per rule, and each refusal leaves no trace."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.errors import InvalidTransition, ValidationFailed
from broker.sessions import machine as m
from broker.sessions.machine import (
    AgentConnected,
    AgentDisconnected,
    AskCustomer,
    Audit,
    ConsentGranted,
    ConsentRefused,
    ConsentRequested,
    ConsentRevoked,
    Effect,
    Ended,
    EngineerDisconnected,
    EngineerJoined,
    EngineerLeft,
    EngineerReconnected,
    Event,
    Notify,
    Paused,
    Phase,
    Released,
    Resumed,
    SessionState,
    StateChanged,
    Tick,
    Transition,
    apply,
    frames_allowed,
    may_receive_frames,
    may_send_input,
)
from broker.types import CaseNumber, Level, ParticipantId, Permission, SessionId

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=30)
A = ParticipantId("alice")
B = ParticipantId("bob")
VIEW, CONTROL, FILES = Permission.VIEW, Permission.CONTROL, Permission.FILES


def t(seconds: float = 0) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(state: SessionState, *events: Event) -> Transition:
    """Apply events in order; return the last transition."""
    tr = Transition(state, ())
    for event in events:
        tr = apply(tr.state, event, resume_window=WINDOW)
    return tr


def actions(tr: Transition) -> list[str]:
    return [e.action for e in tr.effects if isinstance(e, Audit)]


def audit(tr: Transition, action: str) -> dict[str, Any]:
    found = [dict(e.details) for e in tr.effects if isinstance(e, Audit) and e.action == action]
    assert len(found) == 1, actions(tr)
    return found[0]


def of(tr: Transition, kind: type[Effect]) -> list[Effect]:
    return [e for e in tr.effects if isinstance(e, kind)]


def assert_rejected(state: SessionState, event: Event, match: str) -> None:
    before = copy.deepcopy(state)
    with pytest.raises(InvalidTransition, match=match):
        apply(state, event, resume_window=WINDOW)
    assert state == before


def join(pid: ParticipantId = A, at: float = 0) -> EngineerJoined:
    return EngineerJoined(pid, pid.title(), Level.L1, at=t(at))


def grant(pid: ParticipantId, perm: Permission, at: float = 0) -> ConsentGranted:
    return ConsentGranted(pid, perm, "customer", at=t(at))


def fresh() -> SessionState:
    return SessionState.new(SessionId("s" * 22), CaseNumber("C-000123"))


def pending() -> SessionState:
    return run(fresh(), AgentConnected(at=t())).state


def observing(*pids: ParticipantId) -> SessionState:
    state = pending()
    for pid in pids or (A,):
        state = run(state, join(pid), grant(pid, VIEW)).state
    return state


def controlling(pid: ParticipantId = A, *others: ParticipantId) -> SessionState:
    state = observing(pid, *others)
    return run(state, ConsentRequested(pid, CONTROL, at=t()), grant(pid, CONTROL)).state


# Construction and derived data


def test_new_session_waits_for_the_agent() -> None:
    state = fresh()
    assert state.phase is Phase.WAITING
    assert (state.participants, state.controller) == ((), None)
    assert not frames_allowed(state)


def test_every_event_type_has_exactly_one_rule() -> None:
    public = {v for v in vars(m).values() if isinstance(v, type) and issubclass(v, Event)}
    assert set(m.TRANSITIONS) == {c for c in public if not c.__name__.startswith("_")} - {Event}
    assert m.AFTER_END <= set(m.TRANSITIONS)


def test_event_kinds_are_snake_case_names() -> None:
    assert EngineerReconnected.kind == "engineer_reconnected"
    assert ConsentRevoked(A, VIEW, "agent", at=t()).kind == "consent_revoked"


def test_an_unknown_event_type_is_refused() -> None:
    class Bogus(Event):
        pass

    assert_rejected(pending(), Bogus(at=t()), "no rule for Bogus")


@pytest.mark.parametrize(
    "build",
    [
        lambda: EngineerJoined(ParticipantId("agent"), "Agent", None, at=t()),
        lambda: EngineerJoined(ParticipantId(""), "Nobody", None, at=t()),
        lambda: EngineerJoined(A, "  ", None, at=t()),
        lambda: ConsentGranted(A, VIEW, "engineer", at=t()),  # type: ignore[arg-type]
        lambda: ConsentRevoked(A, VIEW, "alice", at=t()),  # type: ignore[arg-type]
    ],
)
def test_malformed_events_fail_at_construction(build: Any) -> None:
    with pytest.raises(ValidationFailed):
        build()


def test_apply_is_pure_and_deterministic() -> None:
    state = observing(A)
    event = ConsentRevoked(A, VIEW, "customer", at=t(1))
    assert apply(state, event, resume_window=WINDOW) == apply(state, event, resume_window=WINDOW)
    assert VIEW in state.participants[0].grants


# Agent


def test_agent_connected_starts_pending_consent() -> None:
    tr = run(fresh(), AgentConnected(at=t()))
    assert tr.state.phase is Phase.PENDING_CONSENT
    assert actions(tr) == ["session.agent_connected"]
    assert StateChanged(Phase.PENDING_CONSENT) in tr.effects


def test_agent_connecting_asks_for_requests_made_while_it_was_away() -> None:
    tr = run(fresh(), join(A))
    assert not of(tr, AskCustomer)
    tr = run(tr.state, AgentConnected(at=t(1)))
    assert of(tr, AskCustomer) == [AskCustomer(A, "Alice", Level.L1, VIEW)]


def test_agent_connected_twice_is_refused() -> None:
    assert_rejected(pending(), AgentConnected(at=t(1)), "already connected")


def test_agent_disconnect_keeps_grants_but_stops_frames() -> None:
    tr = run(observing(A), AgentDisconnected(at=t(1)))
    assert tr.state.phase is Phase.WAITING
    assert tr.state.viewers == {A}
    assert not frames_allowed(tr.state)
    assert actions(tr) == ["session.agent_disconnected"]


def test_agent_resume_within_window_restores_the_session() -> None:
    tr = run(observing(A), AgentDisconnected(at=t(1)), AgentConnected(at=t(31)))
    assert actions(tr) == ["session.agent_resumed"]
    assert tr.state.phase is Phase.OBSERVING and may_receive_frames(tr.state, A)


def test_agent_disconnected_twice_is_refused() -> None:
    assert_rejected(fresh(), AgentDisconnected(at=t()), "not connected")


def test_agent_lost_beyond_window_ends_the_session_on_tick() -> None:
    state = run(controlling(A), AgentDisconnected(at=t(1))).state
    assert run(state, Tick(at=t(31))).state == state  # exactly the window: still resumable
    tr = run(state, Tick(at=t(31.5)))
    assert tr.state.phase is Phase.ENDED and tr.state.end_reason == m.AGENT_LOST
    assert tr.state.viewers == frozenset() and tr.state.controller is None
    assert audit(tr, "session.ended") == {"by": "broker", "reason": "agent_lost"}
    assert audit(tr, "session.control_revoked") == {"pid": A, "reason": "ended"}


def test_agent_returning_after_window_is_refused_until_tick_records_the_end() -> None:
    state = run(observing(A), AgentDisconnected(at=t(1))).state
    assert_rejected(state, AgentConnected(at=t(60)), "ended \\(agent_lost\\)")


# Engineers joining, leaving, dropping


def test_engineer_joined_asks_the_customer_for_view() -> None:
    tr = run(pending(), join(A))
    p = tr.state.participant(A)
    assert p is not None and p.requested == {VIEW} and p.grants == frozenset()
    details = {"pid": A, "display_name": "Alice", "level": Level.L1}
    assert audit(tr, "session.participant_joined") == details
    assert of(tr, AskCustomer) == [AskCustomer(A, "Alice", Level.L1, VIEW)]
    assert not may_receive_frames(tr.state, A) and tr.state.phase is Phase.PENDING_CONSENT


def test_joining_twice_is_refused_even_while_disconnected() -> None:
    state = observing(A)
    assert_rejected(state, join(A, 1), "already in this session")
    state = run(state, EngineerDisconnected(A, at=t(1))).state
    assert_rejected(state, join(A, 2), "already in this session")


def test_viewer_leaving_leaves_the_others_viewing() -> None:
    state = observing(A, B)
    tr = run(state, EngineerLeft(A, at=t(1)))
    assert tr.state.participant(A) is None and tr.state.viewers == {B}
    assert actions(tr) == ["session.participant_left"]


def test_controller_leaving_revokes_control() -> None:
    tr = run(controlling(A), EngineerLeft(A, at=t(1)))
    assert actions(tr) == ["session.control_revoked", "session.participant_left"]
    assert audit(tr, "session.control_revoked")["reason"] == "left"
    assert tr.state.phase is Phase.PENDING_CONSENT
    assert StateChanged(Phase.PENDING_CONSENT) in tr.effects


def test_unknown_engineer_leaving_is_refused() -> None:
    assert_rejected(observing(A), EngineerLeft(B, at=t(1)), "'bob' is not in this session")


def test_disconnect_keeps_grants_within_window() -> None:
    tr = run(controlling(A), EngineerDisconnected(A, at=t(1)))
    assert tr.state.controller == A and tr.state.phase is Phase.CONTROLLING
    assert not may_receive_frames(tr.state, A) and not may_send_input(tr.state, A)
    assert actions(tr) == ["session.participant_disconnected"]


def test_disconnect_refusals() -> None:
    state = run(observing(A), EngineerDisconnected(A, at=t(1))).state
    assert_rejected(state, EngineerDisconnected(A, at=t(2)), "already disconnected")
    assert_rejected(state, EngineerDisconnected(B, at=t(2)), "not in this session")


def test_reconnect_within_window_keeps_grants_without_a_new_prompt() -> None:
    state = controlling(A)
    tr = run(state, EngineerDisconnected(A, at=t(1)), EngineerReconnected(A, at=t(31)))
    assert may_send_input(tr.state, A)
    assert not of(tr, AskCustomer)
    assert audit(tr, "session.participant_resumed") == {"pid": A, "grants": [CONTROL, VIEW]}


def test_reconnect_while_connected_is_refused() -> None:
    assert_rejected(observing(A), EngineerReconnected(A, at=t(1)), "already connected")


def test_reconnect_after_window_is_refused() -> None:
    state = run(observing(A), EngineerDisconnected(A, at=t(1))).state
    assert_rejected(state, EngineerReconnected(A, at=t(40)), "not in this session")


def test_tick_drops_engineers_beyond_window_with_their_grants() -> None:
    state = run(controlling(A, B), EngineerDisconnected(A, at=t(1))).state
    tr = run(state, Tick(at=t(31.001)))
    assert tr.state.participant(A) is None and tr.state.controller is None
    assert actions(tr) == ["session.control_revoked", "session.participant_dropped"]
    assert audit(tr, "session.control_revoked")["reason"] == "resume_window_expired"
    assert tr.state.phase is Phase.OBSERVING


def test_rejoining_after_being_dropped_needs_fresh_consent() -> None:
    state = run(controlling(A), EngineerDisconnected(A, at=t(1)), Tick(at=t(40))).state
    tr = run(state, join(A, 41))
    p = tr.state.participant(A)
    assert p is not None and p.grants == frozenset() and of(tr, AskCustomer)


def test_tick_with_nothing_to_expire_changes_nothing() -> None:
    state = observing(A)
    assert run(state, Tick(at=t(1000))) == Transition(state, ())


# Consent requests and answers


def test_control_request_asks_the_customer() -> None:
    tr = run(observing(A), ConsentRequested(A, CONTROL, at=t(1)))
    assert audit(tr, "session.consent_requested") == {"pid": A, "permission": CONTROL, "reason": ""}
    assert of(tr, AskCustomer) == [AskCustomer(A, "Alice", Level.L1, CONTROL)]


def test_request_while_agent_away_is_asked_on_reconnect() -> None:
    state = run(observing(A), AgentDisconnected(at=t(1))).state
    tr = run(state, ConsentRequested(A, FILES, at=t(2)))
    assert not of(tr, AskCustomer)
    tr = run(tr.state, AgentConnected(at=t(3)))
    assert of(tr, AskCustomer) == [AskCustomer(A, "Alice", Level.L1, FILES)]


def test_request_refusals() -> None:
    state = run(pending(), join(A)).state
    assert_rejected(state, ConsentRequested(A, CONTROL, at=t(1)), "needs VIEW consent first")
    assert_rejected(state, ConsentRequested(A, VIEW, at=t(1)), "already held or pending")
    state = run(state, grant(A, VIEW)).state
    assert_rejected(state, ConsentRequested(A, VIEW, at=t(1)), "already held or pending")
    assert_rejected(state, ConsentRequested(B, VIEW, at=t(1)), "not in this session")
    state = run(state, EngineerDisconnected(A, at=t(1))).state
    assert_rejected(state, ConsentRequested(A, CONTROL, at=t(2)), "is disconnected")


def test_view_may_be_asked_again_after_a_refusal() -> None:
    state = run(pending(), join(A), ConsentRefused(A, VIEW, "customer", at=t(1))).state
    tr = run(state, ConsentRequested(A, VIEW, at=t(2)))
    assert of(tr, AskCustomer) == [AskCustomer(A, "Alice", Level.L1, VIEW)]


def test_view_granted_lets_frames_flow() -> None:
    tr = run(pending(), join(A), ConsentGranted(A, VIEW, "agent", at=t(1)))
    assert may_receive_frames(tr.state, A) and frames_allowed(tr.state)
    assert not may_send_input(tr.state, A)
    assert tr.state.phase is Phase.OBSERVING
    assert audit(tr, "session.consent_granted") == {"pid": A, "permission": VIEW, "by": "agent"}
    assert Notify(A, "consent_granted", VIEW) in tr.effects


def test_grant_without_a_request_is_refused() -> None:
    state = run(pending(), join(A)).state
    assert_rejected(state, grant(A, CONTROL), "did not request control")
    assert_rejected(observing(A), grant(A, VIEW), "did not request view")
    assert_rejected(observing(A), grant(B, VIEW), "not in this session")


def test_control_granted_makes_one_controller() -> None:
    state = observing(A)
    tr = run(state, ConsentRequested(A, CONTROL, at=t(1)), grant(A, CONTROL, 2))
    assert tr.state.controller == A and tr.state.phase is Phase.CONTROLLING
    assert may_send_input(tr.state, A)
    assert audit(tr, "session.control_granted") == {"pid": A, "by": "customer"}
    assert "session.consent_granted" not in actions(tr)


def test_second_control_grant_moves_control_and_tells_the_first() -> None:
    state = run(controlling(A, B), ConsentRequested(B, CONTROL, at=t(1))).state
    tr = run(state, grant(B, CONTROL, 2))
    assert tr.state.controller == B and may_send_input(tr.state, B)
    assert not may_send_input(tr.state, A) and may_receive_frames(tr.state, A)
    assert Notify(A, "control_moved", CONTROL) in tr.effects
    assert actions(tr) == ["session.control_revoked", "session.control_granted"]
    assert audit(tr, "session.control_revoked") == {"pid": A, "reason": "moved"}


def test_refusal_withdraws_the_request() -> None:
    state = run(observing(A), ConsentRequested(A, CONTROL, at=t(1))).state
    tr = run(state, ConsentRefused(A, CONTROL, "customer", at=t(2)))
    p = tr.state.participant(A)
    assert p is not None and p.requested == frozenset() and tr.state.controller is None
    details = {"pid": A, "permission": CONTROL, "by": "customer"}
    assert audit(tr, "session.consent_refused") == details
    assert Notify(A, "consent_refused", CONTROL) in tr.effects


def test_refusal_without_a_request_is_refused() -> None:
    assert_rejected(observing(A), ConsentRefused(A, CONTROL, "agent", at=t(1)), "did not request")


# Revocation: always accepted, effective at once


def test_revoking_view_also_removes_control() -> None:
    state = controlling(A)
    tr = run(state, ConsentRevoked(A, VIEW, "customer", at=t(1)))
    assert not may_receive_frames(tr.state, A) and not may_send_input(tr.state, A)
    assert tr.state.controller is None and tr.state.phase is Phase.PENDING_CONSENT
    assert actions(tr) == ["session.control_revoked", "session.consent_revoked"]
    assert Notify(A, "consent_revoked", VIEW) in tr.effects


def test_revoking_view_withdraws_pending_requests_too() -> None:
    state = run(observing(A), ConsentRequested(A, CONTROL, at=t(1))).state
    state = run(state, ConsentRevoked(A, VIEW, "customer", at=t(2))).state
    p = state.participant(A)
    assert p is not None and p.requested == frozenset()
    assert_rejected(state, grant(A, CONTROL, 3), "did not request control")


def test_revoking_control_keeps_view() -> None:
    state = controlling(A)
    tr = run(state, ConsentRevoked(A, CONTROL, "agent", at=t(1)))
    assert not may_send_input(tr.state, A) and may_receive_frames(tr.state, A)
    assert actions(tr) == ["session.control_revoked"]
    assert audit(tr, "session.control_revoked") == {"pid": A, "reason": "revoked"}
    assert tr.state.phase is Phase.OBSERVING


def test_revoking_a_pending_request_withdraws_it() -> None:
    state = run(observing(A), ConsentRequested(A, CONTROL, at=t(1))).state
    tr = run(state, ConsentRevoked(A, CONTROL, "customer", at=t(2)))
    p = tr.state.participant(A)
    assert p is not None and p.requested == frozenset()
    assert actions(tr) == ["session.consent_revoked"]
    assert_rejected(tr.state, grant(A, CONTROL, 3), "did not request")


@pytest.mark.parametrize(
    ("state", "pid", "perm"),
    [
        (fresh(), A, VIEW),  # nobody there
        (observing(A), B, VIEW),  # unknown engineer
        (observing(A), A, CONTROL),  # not held, not pending
        (run(observing(A), Ended(by="customer", reason="done", at=t(1))).state, A, VIEW),
    ],
)
def test_revoking_nothing_is_an_idempotent_no_op(
    state: SessionState, pid: ParticipantId, perm: Permission
) -> None:
    event = ConsentRevoked(pid, perm, "customer", at=t(2))
    assert apply(state, event, resume_window=WINDOW) == Transition(state, ())


def test_revoking_twice_is_a_no_op_the_second_time() -> None:
    once = run(controlling(A), ConsentRevoked(A, VIEW, "customer", at=t(1))).state
    assert run(once, ConsentRevoked(A, VIEW, "customer", at=t(2))) == Transition(once, ())


# Releasing one's own grants


def test_releasing_control_keeps_view() -> None:
    tr = run(controlling(A), Released(A, CONTROL, at=t(1)))
    assert tr.state.controller is None and may_receive_frames(tr.state, A)
    assert audit(tr, "session.control_revoked") == {"pid": A, "reason": "released"}
    assert actions(tr) == ["session.control_revoked"]


def test_releasing_view_releases_everything() -> None:
    state = run(observing(A), ConsentRequested(A, FILES, at=t(1)), grant(A, FILES, 2)).state
    tr = run(state, Released(A, VIEW, at=t(3)))
    p = tr.state.participant(A)
    assert p is not None and p.grants == frozenset()
    assert audit(tr, "session.consent_released") == {"pid": A, "permission": VIEW}


def test_releasing_what_is_not_held_is_refused() -> None:
    assert_rejected(observing(A), Released(A, CONTROL, at=t(1)), "does not hold control")
    assert_rejected(observing(A), Released(B, VIEW, at=t(1)), "not in this session")


# Pause


def test_pause_keeps_grants_but_stops_frames_and_input() -> None:
    state = controlling(A)
    tr = run(state, Paused(at=t(1)))
    assert tr.state.phase is Phase.PAUSED and tr.state.controller == A
    assert not frames_allowed(tr.state) and not may_send_input(tr.state, A)
    assert actions(tr) == ["session.paused"]
    tr = run(tr.state, Resumed(at=t(2)))
    assert tr.state.phase is Phase.CONTROLLING and may_send_input(tr.state, A)
    assert actions(tr) == ["session.resumed"]


def test_pause_refusals() -> None:
    assert_rejected(pending(), Resumed(at=t(1)), "not paused")
    assert_rejected(run(pending(), Paused(at=t(1))).state, Paused(at=t(2)), "already paused")


def test_paused_while_agent_away_reads_as_waiting() -> None:
    assert run(fresh(), Paused(at=t(1))).state.phase is Phase.WAITING


# End


def test_end_clears_every_grant() -> None:
    state = controlling(A, B)
    tr = run(state, Ended(by="customer", reason="done", at=t(1)))
    assert tr.state.phase is Phase.ENDED and tr.state.end_reason == "done"
    assert all(not p.grants and not p.requested for p in tr.state.participants)
    assert not frames_allowed(tr.state) and not may_send_input(tr.state, A)
    assert actions(tr) == ["session.control_revoked", "session.ended"]
    assert StateChanged(Phase.ENDED) in tr.effects


ENDED = run(controlling(A), Ended(by=A, reason="fixed", at=t(1))).state


@pytest.mark.parametrize(
    "event",
    [
        AgentConnected(at=t(2)),
        AgentDisconnected(at=t(2)),
        join(B, 2),
        EngineerLeft(A, at=t(2)),
        EngineerDisconnected(A, at=t(2)),
        EngineerReconnected(A, at=t(2)),
        ConsentRequested(A, VIEW, at=t(2)),
        grant(A, VIEW, 2),
        ConsentRefused(A, VIEW, "customer", at=t(2)),
        Released(A, VIEW, at=t(2)),
        Paused(at=t(2)),
        Resumed(at=t(2)),
        Ended(by="customer", reason="again", at=t(2)),
    ],
    ids=lambda e: e.kind,
)
def test_ended_is_terminal(event: Event) -> None:
    assert_rejected(ENDED, event, "session has ended \\(fixed\\)")


def test_tick_after_end_is_a_no_op() -> None:
    # A disconnected engineer is not dropped any more: an ended session is only a record.
    ended = run(observing(A), EngineerDisconnected(A, at=t(1)), Ended(by="x", reason="y", at=t(2)))
    assert run(ended.state, Tick(at=t(10_000))) == Transition(ended.state, ())


# The reason given for a request: audited, carried to the customer, kept while pending


def test_the_reason_is_audited_and_asked_with() -> None:
    why = "to reinstall the printer driver"
    tr = run(observing(A), ConsentRequested(A, CONTROL, why, at=t(1)))
    assert audit(tr, "session.consent_requested")["reason"] == why
    assert of(tr, AskCustomer) == [AskCustomer(A, "Alice", Level.L1, CONTROL, why)]
    p = tr.state.participant(A)
    assert p is not None and p.reason_for(CONTROL) == why and p.reason_for(VIEW) == ""


def test_the_reason_is_asked_again_when_the_agent_comes_back() -> None:
    state = run(observing(A), ConsentRequested(A, CONTROL, "open the settings", at=t(1))).state
    state = run(state, AgentDisconnected(at=t(2))).state
    tr = run(state, AgentConnected(at=t(3)))
    assert of(tr, AskCustomer) == [AskCustomer(A, "Alice", Level.L1, CONTROL, "open the settings")]


@pytest.mark.parametrize("answer", ["grant", "refuse", "revoke"])
def test_an_answered_request_forgets_its_reason(answer: str) -> None:
    state = run(observing(A), ConsentRequested(A, CONTROL, "first reason", at=t(1))).state
    settle: Event = {
        "grant": grant(A, CONTROL, 2),
        "refuse": ConsentRefused(A, CONTROL, "customer", at=t(2)),
        "revoke": ConsentRevoked(A, CONTROL, "customer", at=t(2)),
    }[answer]
    state = run(state, settle).state
    p = state.participant(A)
    assert p is not None and p.reasons == ()
    if answer == "grant":
        state = run(state, m.Released(A, CONTROL, at=t(3))).state
    tr = run(state, ConsentRequested(A, CONTROL, at=t(4)))
    assert of(tr, AskCustomer) == [AskCustomer(A, "Alice", Level.L1, CONTROL, "")]


@pytest.mark.parametrize(
    ("reason", "problem"),
    [("x" * 201, "too long"), ("two\nlines", "printable"), ("bidi \u202e", "printable")],
)
def test_a_reason_must_be_one_short_printable_line(reason: str, problem: str) -> None:
    with pytest.raises(ValidationFailed, match=problem):
        ConsentRequested(A, CONTROL, reason, at=t(1))
    assert ConsentRequested(A, CONTROL, "x" * 200, at=t(1)).reason == "x" * 200


# The holder: who has the session in hand (named to the customer)


def holder(tr: Transition) -> list[m.NewHolder]:
    return [e for e in tr.effects if isinstance(e, m.NewHolder)]


def test_the_first_engineer_holds_and_a_second_does_not_take_it() -> None:
    tr = run(pending(), join(A))
    assert tr.state.holder == A and holder(tr) == [m.NewHolder(A, "Alice", Level.L1)]
    tr = run(tr.state, join(B, 1))
    assert tr.state.holder == A and holder(tr) == []


def test_an_invited_engineer_takes_it_over_on_joining() -> None:
    state = observing(A)
    tr = run(state, EngineerJoined(B, "Bob", Level.L3, invited=True, at=t(1)))
    assert tr.state.holder == B and holder(tr) == [m.NewHolder(B, "Bob", Level.L3)]


def test_control_makes_the_holder() -> None:
    state = observing(A, B)
    assert state.holder == A
    tr = run(state, ConsentRequested(B, CONTROL, at=t(1)), grant(B, CONTROL, 2))
    assert tr.state.holder == B and holder(tr) == [m.NewHolder(B, "Bob", Level.L1)]


def test_when_the_holder_leaves_the_next_connected_engineer_holds() -> None:
    state = observing(A, B, ParticipantId("carol"))
    state = run(state, EngineerDisconnected(B, at=t(1))).state
    tr = run(state, EngineerLeft(A, at=t(2)))
    assert tr.state.holder == "carol"  # bob is away: the next one still here
    tr = run(tr.state, EngineerLeft(ParticipantId("carol"), at=t(3)))
    assert tr.state.holder is None and holder(tr) == [m.NewHolder(None, None, None)]
    tr = run(tr.state, EngineerReconnected(B, at=t(4)))
    assert tr.state.holder == B


def test_a_dropped_holder_hands_over_and_an_away_holder_keeps_it() -> None:
    state = observing(A, B)
    tr = run(state, EngineerDisconnected(A, at=t(1)))
    assert tr.state.holder == A and holder(tr) == []  # may come back within the window
    tr = run(tr.state, Tick(at=t(40)))
    assert tr.state.holder == B and holder(tr) == [m.NewHolder(B, "Bob", Level.L1)]


def test_the_holder_stays_named_after_the_end() -> None:
    tr = run(observing(A), Ended(by="customer", reason="done", at=t(1)))
    assert tr.state.holder == A and holder(tr) == []
