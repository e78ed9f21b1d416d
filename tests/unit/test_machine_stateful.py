"""Random walks over the session machine, valid and invalid events alike, checking its invariants.

The test keeps its own record of the consents it granted: the machine may never show a grant
the test did not give, nor bring back one it has taken away (no control without fresh consent).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from broker.errors import InvalidTransition
from broker.sessions.machine import (
    AFTER_END,
    AgentConnected,
    AgentDisconnected,
    ConsentGranted,
    ConsentRefused,
    ConsentRequested,
    ConsentRevoked,
    Ended,
    EngineerDisconnected,
    EngineerJoined,
    EngineerLeft,
    EngineerReconnected,
    Event,
    Paused,
    Phase,
    Released,
    Resumed,
    SessionState,
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
VIEW, CONTROL = Permission.VIEW, Permission.CONTROL
ALL_PIDS = [ParticipantId(name) for name in ("alice", "bob", "carol")]

# A pick of 0 or 1 names anyone, perhaps someone absent; a higher one names someone present, so
# that walks get past joining and into the consent rules.
picks = st.integers(min_value=0, max_value=9)
# Weighted towards the two permissions with the most rules, but every kind appears.
perms = st.sampled_from([VIEW, VIEW, CONTROL, CONTROL, Permission.FILES, Permission.CLIPBOARD])
Source = Literal["customer", "agent"]
sources: st.SearchStrategy[Source] = st.sampled_from(["customer", "agent"])
steps = st.integers(min_value=0, max_value=8)  # seconds between events; the window is 30


@settings(max_examples=200, stateful_step_count=40, deadline=None)
class SessionWalk(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = SessionState.new(SessionId("s" * 22), CaseNumber("C-000123"))
        self.now = T0  # the clock the test moves forward
        self.state_at = T0  # time of the last event the machine accepted
        self.given: set[tuple[ParticipantId, Permission]] = set()

    def send(self, event: Event) -> Transition | None:
        """Apply an event; check what every transition must satisfy; None if refused."""
        before = self.state
        snapshot = repr(before)  # states are frozen; this proves it cheaply at every step
        try:
            tr = apply(before, event, resume_window=WINDOW)
        except InvalidTransition:
            assert type(event) not in AFTER_END, "revocation and Tick must never be refused"
            assert repr(before) == snapshot
            return None
        after = tr.state
        if before.ended:
            assert tr == Transition(before, ()), "ENDED is terminal"
        if isinstance(event, ConsentGranted):
            self.given.add((event.pid, event.permission))
        if after.controller not in (None, before.controller):
            assert isinstance(event, ConsentGranted) and event.permission is CONTROL
        held = {(p.pid, g) for p in after.participants for g in p.grants}
        assert held <= self.given, f"grants nobody gave: {held - self.given}"
        self.given = held  # a grant that is gone may only come back through a new consent
        self.state, self.state_at = after, event.at
        return tr

    def who(self, pick: int, connected: bool | None = None) -> ParticipantId:
        """Anyone (perhaps absent) if ``pick`` < 2, else someone present (and ``connected``)."""
        present = [p.pid for p in self.state.participants if connected in (None, p.connected)]
        if pick < 2 or not present:
            return ALL_PIDS[pick % len(ALL_PIDS)]
        return present[pick % len(present)]

    def at(self, seconds: int) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    @initialize(
        connect=st.sampled_from([True, True, True, False]),
        joiners=st.sampled_from([3, 3, 2, 1, 0]),
        viewers=st.sampled_from([3, 2, 2, 1, 0]),
        controller=st.sampled_from([True, True, False]),
    )
    def cast(self, connect: bool, joiners: int, viewers: int, controller: bool) -> None:
        # Random events rarely line up into a consent flow, so most walks start part-way in:
        # agent present, engineers joined, some of them viewing, perhaps one controlling.
        if connect:
            self.send(AgentConnected(at=self.now))
        for i, pid in enumerate(ALL_PIDS[:joiners]):
            self.send(EngineerJoined(pid, pid.title(), Level.L1, at=self.now))
            if i < viewers:
                self.send(ConsentGranted(pid, VIEW, "customer", at=self.now))
        if controller and joiners and viewers:
            self.send(ConsentRequested(ALL_PIDS[0], CONTROL, at=self.now))
            self.send(ConsentGranted(ALL_PIDS[0], CONTROL, "agent", at=self.now))

    # Agent and customer

    @rule(connect=st.booleans(), dt=steps)
    def agent_link(self, connect: bool, dt: int) -> None:
        at = self.at(dt)
        self.send(AgentConnected(at=at) if connect else AgentDisconnected(at=at))

    @rule(resume=st.booleans(), dt=steps)
    def pause_or_resume(self, resume: bool, dt: int) -> None:
        tr = self.send(Resumed(at=self.at(dt)) if resume else Paused(at=self.at(dt)))
        if tr is not None and not resume:
            assert not frames_allowed(tr.state)
            assert not any(may_send_input(tr.state, pid) for pid in ALL_PIDS)

    @rule(pick=picks, perm=perms, by=sources, dt=steps)
    def grant(self, pick: int, perm: Permission, by: Source, dt: int) -> None:
        self.send(ConsentGranted(self.who(pick), perm, by, at=self.at(dt)))

    @rule(pick=picks, by=sources, dt=steps)
    def consent_progresses(self, pick: int, by: Source, dt: int) -> None:
        # Random events rarely line up into a consent flow; this takes its next step for someone
        # present: answer a pending prompt, else ask for VIEW, else ask for CONTROL.
        present = self.state.participants
        if not present:
            return
        p = present[pick % len(present)]
        at = self.at(dt)
        if p.requested:
            self.send(ConsentGranted(p.pid, min(p.requested), by, at=at))
        else:
            self.send(ConsentRequested(p.pid, CONTROL if VIEW in p.grants else VIEW, at=at))

    @rule(pick=picks, by=sources, dt=steps)
    def control_changes_hands(self, pick: int, by: Source, dt: int) -> None:
        # A second engineer asks for control and gets it: control moves, never doubles.
        viewers = sorted(self.state.viewers - {self.state.controller})
        if viewers:
            pid = viewers[pick % len(viewers)]
            if self.send(ConsentRequested(pid, CONTROL, at=self.at(dt))) is not None:
                self.send(ConsentGranted(pid, CONTROL, by, at=self.now))
                assert self.state.controller in (None, pid)

    @rule(pick=picks, perm=perms, by=sources, dt=steps)
    def refuse(self, pick: int, perm: Permission, by: Source, dt: int) -> None:
        self.send(ConsentRefused(self.who(pick), perm, by, at=self.at(dt)))

    @rule(pick=picks, perm=perms, by=sources, dt=steps)
    def revoke(self, pick: int, perm: Permission, by: Source, dt: int) -> None:
        pid = self.who(pick)
        tr = self.send(ConsentRevoked(pid, perm, by, at=self.at(dt)))
        assert tr is not None, "revocation is never refused"
        p = tr.state.participant(pid)
        assert p is None or (perm not in p.grants and perm not in p.requested)
        if perm in (VIEW, CONTROL):  # effective at once, before any other event
            assert not may_send_input(tr.state, pid)
        if perm is VIEW:
            assert not may_receive_frames(tr.state, pid)

    @rule(roll=st.integers(min_value=0, max_value=15), dt=steps)
    def end_now_and_then(self, roll: int, dt: int) -> None:
        # Ending makes the rest of a walk short, so it is drawn one time in sixteen.
        at = self.at(dt)
        self.send(Ended(by="customer", reason="done", at=at) if roll == 0 else Tick(at=at))

    @rule(dt=st.integers(min_value=0, max_value=45))
    def time_passes(self, dt: int) -> None:
        self.send(Tick(at=self.at(dt)))

    # Engineers

    @rule(pick=picks, dt=steps)
    def join(self, pick: int, dt: int) -> None:
        pid = ALL_PIDS[pick % len(ALL_PIDS)]
        self.send(EngineerJoined(pid, pid.title(), Level.L2, at=self.at(dt)))

    @rule(pick=picks, dt=steps)
    def join_on_invitation(self, pick: int, dt: int) -> None:
        pid = ALL_PIDS[pick % len(ALL_PIDS)]
        self.send(EngineerJoined(pid, pid.title(), Level.L3, invited=True, at=self.at(dt)))

    @rule(pick=picks, dt=steps)
    def leave(self, pick: int, dt: int) -> None:
        self.send(EngineerLeft(self.who(pick), at=self.at(dt)))

    @rule(pick=picks, dt=steps)
    def disconnect(self, pick: int, dt: int) -> None:
        self.send(EngineerDisconnected(self.who(pick, connected=True), at=self.at(dt)))

    @rule(pick=picks, dt=steps)
    def reconnect(self, pick: int, dt: int) -> None:
        self.send(EngineerReconnected(self.who(pick, connected=False), at=self.at(dt)))

    @rule(pick=picks, perm=perms, dt=steps)
    def request(self, pick: int, perm: Permission, dt: int) -> None:
        self.send(ConsentRequested(self.who(pick), perm, f"why {pick}", at=self.at(dt)))

    @rule(pick=picks, perm=perms, dt=steps)
    def release(self, pick: int, perm: Permission, dt: int) -> None:
        self.send(Released(self.who(pick), perm, at=self.at(dt)))

    # Invariants of every reachable state

    @invariant()
    def one_controller_holding_view_and_present(self) -> None:
        s = self.state
        holders = [p for p in s.participants if CONTROL in p.grants]
        assert len(holders) <= 1
        if holders:
            (c,) = holders
            assert s.controller == c.pid and VIEW in c.grants
            assert c.connected or (
                c.disconnected_at is not None and self.state_at - c.disconnected_at <= WINDOW
            )
        else:
            assert s.controller is None

    @invariant()
    def nobody_lingers_past_the_window(self) -> None:
        for p in self.state.participants:
            assert p.connected == (p.disconnected_at is None)
            if p.disconnected_at is not None and not self.state.ended:  # ended: a record only
                assert self.state_at - p.disconnected_at <= WINDOW

    @invariant()
    def everything_beyond_view_needs_view(self) -> None:
        for p in self.state.participants:
            assert not (p.grants & p.requested)
            if VIEW not in p.grants:
                assert p.grants == frozenset() and p.requested <= {VIEW}

    @invariant()
    def only_consented_viewers_see_and_only_the_controller_drives(self) -> None:
        s = self.state
        senders = [pid for pid in ALL_PIDS if may_send_input(s, pid)]
        assert senders in ([], [s.controller])
        for pid in ALL_PIDS:
            if may_receive_frames(s, pid):
                assert (pid, VIEW) in self.given
                assert s.agent_connected and not s.paused and not s.ended
        assert frames_allowed(s) == any(may_receive_frames(s, pid) for pid in ALL_PIDS)

    @invariant()
    def the_holder_is_here_and_someone_holds_while_anyone_is(self) -> None:
        s = self.state
        assert s.holder is None or s.participant(s.holder) is not None
        if any(p.connected for p in s.participants):
            assert s.holder is not None

    @invariant()
    def reasons_only_for_pending_requests(self) -> None:
        for p in self.state.participants:
            asked = [perm for perm, _ in p.reasons]
            assert len(asked) == len(set(asked)) and set(asked) <= p.requested

    @invariant()
    def phase_matches_the_data(self) -> None:
        s = self.state
        assert (s.phase is Phase.ENDED) == s.ended
        if s.ended:
            assert not any(p.grants or p.requested for p in s.participants)
        elif s.phase is Phase.CONTROLLING:
            assert s.controller is not None and not s.paused


TestSessionWalk = SessionWalk.TestCase
