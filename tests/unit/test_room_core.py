"""Random walks over the live session's core (``Room.step``), with no socket and no database.

Peers here are recording sinks (what a WebSocket peer, a recorder or another node implements:
``send`` and the few attributes the room reads). Connections come and go through the room's
``attach_*`` / ``detach_*``, events go through ``step``, and after every step the test checks
what the relay promises: frames only to viewers the rules admit, input only from the
controller, each consent request once per agent connection, every audit row from the rules,
and a ``state`` message only when the state changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from broker.audit.log import Actor
from broker.errors import InvalidTransition
from broker.relay.peer import Peer
from broker.relay.room import Close, Record, Room, RoomEffect, Send, Write
from broker.sessions import machine as m
from broker.types import Level, ParticipantId, Permission
from rsb_protocol import messages as msg
from rsb_protocol.e2e import KeyPair
from rsb_protocol.framing import AGENT_SLOT

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
NAMES = ("alice", "bob", "carol")
VIEW, CONTROL = Permission.VIEW, Permission.CONTROL


@dataclass(eq=False)
class Sink:
    """A peer as the room sees it; records what it is sent."""

    kind: str
    participant: str
    slot: int
    display_name: str = ""
    level: str | None = None
    role: str = ""
    sent: list[msg.Message] = field(default_factory=list)

    def send(self, message: msg.Message) -> None:
        self.sent.append(message)

    def offer(self, data: bytes, frame_type: object) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return False


async def _no_audit(actor: Actor, action: str, details: Mapping[str, Any]) -> None:
    """Rows are checked as ``Write`` effects; nothing is written."""


def _peer(sink: Sink) -> Peer:
    return cast(Peer, sink)  # the room only sends to it and reads its attributes


@settings(max_examples=150, stateful_step_count=40, deadline=None)
class RoomWalk(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.room = Room(
            "s" * 22,
            "C-000123",
            organisation="Acme",
            resume_window=timedelta(seconds=30),
            clock=lambda: self.now,
            audit=_no_audit,
        )
        self.agents: list[Sink] = []
        self.viewers: dict[str, Sink] = {}
        self.states_seen: dict[int, msg.State] = {}
        self.cut: set[int] = set()  # slots of the peers the broker cut

    # --- driving ---------------------------------------------------------------------------

    def step(self, event: m.Event) -> None:
        before = self.room.state
        try:
            transition, effects = self.room.step(event)
        except InvalidTransition:
            assert self.room.state is before, "a refused event changes nothing"
            return
        rows = [e for e in effects if isinstance(e, Write)]
        audits = [e for e in transition.effects if isinstance(e, m.Audit)]
        assert [(w.action, w.details) for w in rows] == [(a.action, a.details) for a in audits]
        holders = [e.change for e in effects if isinstance(e, Record)]
        assert holders == [e for e in transition.effects if isinstance(e, m.NewHolder)]
        self.carry(effects)

    def carry(self, effects: list[RoomEffect] | None) -> None:
        """What the endpoint does with the room's effects, minus the I/O: sends are recorded."""
        for effect in effects or ():
            if isinstance(effect, Send):
                effect.to.send(effect.message)

    def tick(self, seconds: int) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def sink_for(self, name: str) -> Sink:
        slot = self.room.slot_for(name)
        return Sink("viewer", name, slot, name.title(), "L2", "rse")

    @rule()
    def agent_connects(self) -> None:
        agent = Sink("agent", "agent", AGENT_SLOT)
        previous = self.room.agent
        self.agents.append(agent)
        effects = self.room.attach_agent(_peer(agent))
        closed = [e.peer for e in effects if isinstance(e, Close)]
        assert closed == ([previous] if previous is not None else []), "the replaced one goes"
        self.carry(effects)
        if not self.room.state.agent_connected:
            self.step(m.AgentConnected(at=self.tick(1)))

    @rule()
    def late_departure_of_a_replaced_connection(self) -> None:
        """What ``_count_agent`` does when an old connection's leaving is applied after its
        replacement arrived: the agent is counted lost, then back."""
        if self.room.agent is not None and self.room.state.agent_connected:
            self.step(m.AgentDisconnected(at=self.tick(1)))
            self.step(m.AgentConnected(at=self.tick(1)))

    @rule()
    def agent_drops(self) -> None:
        if self.agents and (left := self.room.detach_agent(_peer(self.agents[-1]))) is not None:
            self.carry(left)
            self.step(m.AgentDisconnected(at=self.tick(1)))

    @rule(who=st.sampled_from(NAMES))
    def engineer_joins(self, who: str) -> None:
        viewer = self.sink_for(who)
        replaced = self.viewers.get(who)
        if replaced is not None:
            self.cut.discard(replaced.slot)
        self.viewers[who] = viewer
        self.carry(self.room.attach_viewer(_peer(viewer)))
        pid = ParticipantId(who)
        known = self.room.state.participant(pid)
        if known is None:
            self.step(m.EngineerJoined(pid, who.title(), Level.L2, at=self.tick(1)))
        elif not known.connected:
            self.step(m.EngineerReconnected(pid, at=self.tick(1)))
        else:
            self.room.reroute()

    @rule(who=st.sampled_from(NAMES), left=st.booleans())
    def engineer_goes(self, who: str, left: bool) -> None:
        viewer = self.viewers.pop(who, None)
        if viewer is None:
            return
        self.cut.discard(viewer.slot)
        gone = self.room.detach_viewer(_peer(viewer), "left" if left else "disconnected")
        if gone is not None:
            self.carry(gone)
            pid = ParticipantId(who)
            event = m.EngineerLeft(pid, at=self.tick(1)) if left else None
            self.step(event or m.EngineerDisconnected(pid, at=self.tick(1)))

    @rule(who=st.sampled_from(NAMES), permission=st.sampled_from([VIEW, CONTROL]))
    def engineer_asks(self, who: str, permission: Permission) -> None:
        self.step(m.ConsentRequested(ParticipantId(who), permission, "why", at=self.tick(1)))

    @rule(
        who=st.sampled_from(NAMES),
        permission=st.sampled_from([VIEW, CONTROL]),
        yes=st.booleans(),
    )
    def customer_answers(self, who: str, permission: Permission, yes: bool) -> None:
        pid = ParticipantId(who)
        answer: m.Event = (
            m.ConsentGranted(pid, permission, "agent", at=self.tick(1))
            if yes
            else m.ConsentRefused(pid, permission, "agent", at=self.tick(1))
        )
        self.step(answer)

    @rule(pause=st.booleans())
    def customer_pauses(self, pause: bool) -> None:
        self.step(m.Paused(at=self.tick(1)) if pause else m.Resumed(at=self.tick(1)))

    @rule(who=st.sampled_from([*NAMES, "agent"]))
    def key_announced(self, who: str) -> None:
        sink = self.agents[-1] if who == "agent" and self.agents else self.viewers.get(who)
        if sink is None or (who == "agent" and self.room.agent is not _peer(sink)):
            return
        key = KeyPair.generate().public.announce(sink.slot)
        self.carry(self.room.announce_key(_peer(sink), key))

    @rule(who=st.sampled_from(NAMES))
    def access_ends(self, who: str) -> None:
        """The broker cuts a connected engineer (disabled, key revoked, token expired)."""
        viewer = self.viewers.get(who)
        if viewer is None or viewer.slot in self.cut:
            return
        effects = self.room.cut(_peer(viewer), 4006, "access revoked", "user_disabled")
        assert [type(e) for e in effects] == [Close, Write]
        row = effects[1]
        assert isinstance(row, Write) and row.details["participant"] == who
        self.cut.add(viewer.slot)

    @rule(seconds=st.integers(1, 40))
    def time_passes(self, seconds: int) -> None:
        self.step(m.Tick(at=self.tick(seconds)))

    # --- what must always hold ----------------------------------------------------------------

    @invariant()
    def frames_only_to_admitted_viewers(self) -> None:
        room, state = self.room, self.room.state
        for target in room.frame_targets:
            assert target.slot not in self.cut, "a cut peer has no route"
            pid = room.participant_at(target.slot)
            assert pid is not None and m.may_receive_frames(state, pid)
            assert room.viewers.get(target.slot) is target, "a target is a connected viewer"
        admitted = {
            slot
            for slot, viewer in room.viewers.items()
            if (pid := room.participant_at(slot))
            and m.may_receive_frames(state, pid)
            and viewer.slot not in self.cut
        }
        assert {t.slot for t in room.frame_targets} == admitted

    @invariant()
    def input_only_from_the_controller(self) -> None:
        room, state = self.room, self.room.state
        if room.controller is None:
            return
        assert room.controller.slot not in self.cut, "a cut peer's input has no route"
        pid = room.participant_at(room.controller.slot)
        assert pid is not None and m.may_send_input(state, pid)
        assert room.controller in room.frame_targets, "the controller sees what it drives"

    @invariant()
    def each_request_once_per_agent_connection(self) -> None:
        for agent in self.agents:
            ids = [r.request_id for r in agent.sent if isinstance(r, msg.ConsentRequest)]
            assert len(ids) == len(set(ids)), ids

    @invariant()
    def a_newcomer_is_greeted_with_only_who_is_here(self) -> None:
        room = self.room
        newcomer = Sink("viewer", "zoe", 99, "Zoe", "L3", "engineering")
        greeting = [e.message for e in room.greeting(_peer(newcomer))]
        assert isinstance(greeting[0], msg.Welcome) and greeting[0].slot == 99
        present = set(room.viewers) | ({AGENT_SLOT} if room.agent is not None else set())
        keys = [m.slot for m in greeting if isinstance(m, msg.PublicKeyAnnounce)]
        assert set(keys) <= present and 99 not in keys, (keys, present)
        joins = {m.slot for m in greeting if isinstance(m, msg.Join)}
        assert joins == present, (joins, present)
        viewer_keys = [k for k in keys if k != AGENT_SLOT]
        assert len(viewer_keys) == len(set(viewer_keys)), "a viewer holds one key"

    @invariant()
    def state_messages_only_on_change(self) -> None:
        for sink in [*self.agents, *self.viewers.values()]:
            states = [s for s in sink.sent if isinstance(s, msg.State)]
            assert all(a != b for a, b in zip(states, states[1:], strict=False)), states


TestRoomWalk = RoomWalk.TestCase
