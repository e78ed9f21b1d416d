"""One live session on the relay: its state machine, its peers and who may receive what.

Every change goes through ``broker.sessions.machine.apply`` under the room's lock; the room
then carries out the effects (audit, ask the agent, tell the peers) and recomputes its routing
table. The frame path reads only that table (``frame_targets``, ``controller``), so a
consent decision takes effect for the very next frame and nothing on the frame path touches
the database or parses JSON.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from broker.audit.actions import AuditAction
from broker.audit.log import Actor
from broker.clock import Clock
from broker.errors import CloseCode
from broker.relay.peer import Peer
from broker.relay.routing import FrameSink
from broker.sessions import machine as m
from broker.sessions.participants import Phase
from broker.types import CaseNumber, ParticipantId, Permission, SessionId
from rsb_protocol import messages as msg
from rsb_protocol.framing import AGENT_SLOT, CUSTOMER_SLOT

log = logging.getLogger(__name__)

AuditSink = Callable[[Actor, AuditAction, Mapping[str, Any]], Awaitable[None]]
HolderSink = Callable[[m.NewHolder], Awaitable[None]]
"""Records who has the session in hand now (the session's stored holder)."""


async def _no_holder_sink(change: m.NewHolder) -> None:
    """For rooms that need not record the holder."""


_CUSTOMER_JOIN = msg.Join(CUSTOMER_SLOT, "customer", "Customer", msg.Role.CUSTOMER)
AGENT_JOIN = msg.Join(AGENT_SLOT, "agent", "Customer's computer", msg.Role.AGENT)
BROWSER_JOIN = msg.Join(
    AGENT_SLOT, "agent", "Customer's browser", msg.Role.AGENT, source=msg.Source.BROWSER
)
"""Slot 0 when the customer page itself shares the screen (view only, docs/protocol.md)."""


class MessageSink(Protocol):
    """Where the room sends control messages: a live peer; never waits."""

    def send(self, message: msg.Message) -> None: ...


@dataclass(frozen=True)
class Send:
    """Effect: send ``message`` to ``to``."""

    to: MessageSink
    message: msg.Message


@dataclass(frozen=True)
class Write:
    """Effect: append an audit row (by the actor whose event this was)."""

    action: AuditAction
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Record:
    """Effect: store who has the session in hand now."""

    change: m.NewHolder


@dataclass(frozen=True)
class Close:
    """Effect: close ``peer``'s connection with ``code`` once what is queued for it is out."""

    peer: Peer
    code: int
    message: str


RoomEffect = Send | Write | Record | Close


def _customer_leave(reason: str) -> msg.Leave:
    return msg.Leave(CUSTOMER_SLOT, "customer", reason)


class Room:
    def __init__(
        self,
        session_id: str,
        case_number: str,
        *,
        organisation: str,
        resume_window: timedelta,
        clock: Clock,
        audit: AuditSink,
        holder: HolderSink = _no_holder_sink,
    ) -> None:
        self.session_id = session_id
        self.case_number = case_number
        self.organisation = organisation
        self.state = m.SessionState.new(SessionId(session_id), CaseNumber(case_number))
        self.lock = asyncio.Lock()
        self.agent: Peer | None = None
        self.viewers: dict[int, Peer] = {}
        self.customers: set[Peer] = set()
        # The customer page whose key the agent and engineers hold: the one that announced
        # last. Chat from and to the customer goes through it only (docs/protocol.md).
        self.chat_page: Peer | None = None
        # One key per slot *and algorithm*: the agent announces X25519 and P-256 so a console
        # without X25519 can still join; keeping only the last one locked X25519 viewers out.
        self.public_keys: dict[tuple[int, str], msg.PublicKeyAnnounce] = {}
        self.frame_targets: tuple[FrameSink, ...] = ()
        self.controller: Peer | None = None
        # The newest (epoch, seq) acknowledged to the agent. The sequence starts again with
        # each epoch and with each agent process, so a new epoch always goes through.
        self.max_acked: tuple[int, int] = (-1, 0)
        # The newest (epoch, seq) of a screen update relayed to any viewer: no ACK goes further.
        self.sent_position: tuple[int, int] = (-1, 0)
        self._slots: dict[str, int] = {}
        self._names: dict[int, tuple[str, str | None]] = {}
        self._requests: dict[tuple[int, str], str] = {}
        self._request_seq = 0
        self._resume_window = resume_window
        self._clock = clock
        self.audit = audit
        self._holder = holder
        # What every peer was last told: each newcomer is greeted with the current state, so
        # a step that leaves it as it is tells nobody again (not even the first newcomer).
        self._last_state = msg.State(phase=self.state.phase.value)
        # The requests the customer pages were shown, (slot, permission) -> request id; each
        # is closed on the pages with the agent's answer (``_show_requests``).
        self._shown: dict[tuple[int, str], str] = {}
        # Peers whose access the broker ended (``cut``): no route, whatever the state says.
        self._cut: set[Peer] = set()
        # The request ids already sent on the agent's current connection (``send_request``).
        self._asked_on: Peer | None = None
        self._asked_ids: set[str] = set()
        # What the agent's connection said it is (``hello.source``): a browser cannot be
        # controlled. Kept while it is away, so the console keeps saying so meanwhile.
        self.agent_source = msg.Source.AGENT

    # --- connections: the only places the room's peers change ------------------------------
    #
    # Like ``step``, these change the room and return what the world must be told; the
    # endpoint carries it out (``carry_out``), with the actor of the connection.

    def attach_agent(self, peer: Peer) -> list[RoomEffect]:
        """The agent's new connection takes over: the one it replaces is closed (and who
        pushed it out recorded), it is greeted, and the others learn of it as newcomers would.

        A new connection counts ACKs and relayed updates from a new epoch. One that replaces a
        connection the state machine still counts is sent what is open: the machine asks
        nothing again, while for a first connection ``AgentConnected`` asks it, and asking
        here as well would ask the agent twice.
        """
        previous, self.agent = self.agent, peer
        self.max_acked = self.sent_position = (-1, 0)
        self.agent_source = msg.Source.AGENT  # until this connection's hello says otherwise
        out: list[RoomEffect] = []
        if previous is not None:
            out.append(Close(previous, CloseCode.REPLACED, "replaced by a newer agent connection"))
            out.append(Write(AuditAction.RELAY_REPLACED, {"kind": "agent", "slot": AGENT_SLOT}))
        out += self.greeting(peer)
        out += self._to_all(self.agent_join(), but=peer)
        if self.state.agent_connected:
            for request in self.pending_requests():
                self._request_to_agent(request, out)
        return out

    def detach_agent(self, peer: Peer) -> list[RoomEffect] | None:
        """The agent's connection ``peer`` went; None if a newer one had replaced it."""
        self._cut.discard(peer)
        if self.agent is not peer:
            return None
        self.agent = None
        return self._to_all(msg.Leave(AGENT_SLOT, "agent", "disconnected"))

    def agent_join(self) -> msg.Join:
        """The ``join`` for slot 0, naming the agent's source."""
        return BROWSER_JOIN if self.agent_source is msg.Source.BROWSER else AGENT_JOIN

    def agent_hello(self, peer: Peer, hello: msg.Hello) -> list[RoomEffect]:
        """The agent's connection said what it is: a changed source is announced again.

        The frame path does not look at it; only control requests do (a browser can only
        show), and the others learn it from the ``join`` of slot 0.
        """
        if peer is not self.agent or hello.source is self.agent_source:
            return []
        self.agent_source = hello.source
        return self._to_all(self.agent_join(), but=peer)

    def attach_viewer(self, peer: Peer) -> list[RoomEffect]:
        """A viewer's connection takes its slot (closing the one it replaces) and is greeted;
        the others learn who joined."""
        previous = self.viewers.get(peer.slot)
        self.viewers[peer.slot] = peer
        self.remember(peer)
        out: list[RoomEffect] = []
        if previous is not None:
            out.append(Close(previous, CloseCode.REPLACED, "replaced by a newer connection"))
            out.append(Write(AuditAction.RELAY_REPLACED, {"kind": "viewer", "slot": peer.slot}))
        out += self.greeting(peer)
        out += self._to_all(self.join_message(peer), but=peer)
        return out

    def detach_viewer(self, peer: Peer, reason: str) -> list[RoomEffect] | None:
        """The viewer's connection went; None if a newer one had taken its slot."""
        self._cut.discard(peer)
        if self.viewers.get(peer.slot) is not peer:
            return None
        del self.viewers[peer.slot]
        return self._to_all(msg.Leave(peer.slot, peer.participant, reason))

    def attach_page(self, peer: Peer) -> list[RoomEffect]:
        self.customers.add(peer)
        return list(self.greeting(peer))

    def detach_page(self, peer: Peer) -> list[RoomEffect]:
        """A customer page went; if it held the chat, its key leaves the session."""
        self._cut.discard(peer)
        self.customers.discard(peer)
        if self.chat_page is not peer:
            return []
        self.chat_page = None
        for index in [index for index in self.public_keys if index[0] == CUSTOMER_SLOT]:
            del self.public_keys[index]
        return list(self._to_staff_and_agent(_customer_leave("page closed")))

    def announce_key(self, peer: Peer, key: msg.PublicKeyAnnounce) -> list[RoomEffect]:
        """A participant's public key: kept for newcomers and relayed to everyone else.

        A viewer holds one key: a new one (of another algorithm, say) replaces it. The agent
        announces one per algorithm it offers.
        """
        if peer.kind == "viewer":
            for index in [k for k in self.public_keys if k[0] == peer.slot]:
                del self.public_keys[index]
        self.public_keys[peer.slot, key.algorithm.value] = key
        return self._to_all(key, but=peer)

    def cut(self, peer: Peer, code: int, message: str, reason: str) -> list[RoomEffect]:
        """The broker ends a peer's access (user disabled, key revoked, token expired).

        Its routes go at once, before anything else it sends is relayed; what comes back is
        its close and the ``relay.closed`` row, for the hub to carry out. Its departure (the
        state machine's event) follows when its endpoint sees the socket close.
        """
        self._cut.add(peer)
        self._reroute()
        details = {
            "kind": peer.kind,
            "slot": peer.slot,
            "participant": peer.participant,
            "code": int(code),
            "reason": reason,
        }
        return [Close(peer, code, message), Write(AuditAction.RELAY_CLOSED, details)]

    # --- the frame path's bookkeeping ------------------------------------------------------

    def note_sent(self, position: tuple[int, int]) -> None:
        """An update (epoch, seq) was relayed to the viewers: ACKs may cover it now."""
        self.sent_position = position

    def accept_ack(self, epoch: int, seq: int) -> bool:
        """Whether an admitted viewer's ACK goes to the agent.

        An ACK counts only for what was sent: the agent's current epoch, no further than the
        newest update relayed (one that acknowledges what it never got would pace the agent
        with made-up numbers). The fastest viewer paces the agent: each newer seq goes
        through, and the first ACK of a new epoch (a re-key or a restarted agent starts
        counting at 1 again; no update has seq 0).
        """
        sent_epoch, sent_seq = self.sent_position
        last_epoch, last_seq = self.max_acked
        if 0 < seq <= sent_seq and epoch == sent_epoch and (epoch != last_epoch or seq > last_seq):
            self.max_acked = (epoch, seq)
            return True
        return False

    # --- slots ----------------------------------------------------------------------------

    def slot_for(self, participant: str) -> int:
        """Stable per participant for the life of the room, so a resume keeps its slot."""
        if participant not in self._slots:
            self._slots[participant] = len(self._slots) + 1
        return self._slots[participant]

    def participant_at(self, slot: int) -> ParticipantId | None:
        for name, number in self._slots.items():
            if number == slot:
                return ParticipantId(name)
        return None

    @property
    def ended(self) -> bool:
        return self.state.ended

    @property
    def resume_window_running(self) -> bool:
        """Someone (agent or engineer) is away and may expire: only then can a Tick change
        anything (``machine._sweep`` looks at nothing else)."""
        state = self.state
        return state.agent_disconnected_at is not None or any(
            p.disconnected_at is not None for p in state.participants
        )

    # --- applying events ------------------------------------------------------------------

    async def apply(self, event: m.Event, actor: Actor) -> m.Transition:
        """Apply one event and carry out its effects in order, under the room's lock.

        Raises:
            InvalidTransition: the rules do not allow it; nothing changed.
        """
        async with self.lock:
            transition, effects = self.step(event)
            await self.carry_out(effects, actor)
            return transition

    async def carry_out(self, effects: Iterable[RoomEffect], actor: Actor) -> None:
        """The shell: do what the core decided, in its order (``actor`` writes the rows)."""
        for effect in effects:
            match effect:
                case Send(to, message):
                    to.send(message)
                case Close(peer, code, message):
                    peer.close_soon(code, message)
                case Write(action, details):
                    await self.audit(actor, action, details)
                case Record(change):
                    await self._holder(change)

    def step(self, event: m.Event) -> tuple[m.Transition, list[RoomEffect]]:
        """The live session's core: apply the rules to one event, without I/O.

        The state, the request ids and the routing state change here; what the world must be
        told comes back as effects, in the order they must happen: messages to peers
        (``Send``), audit rows (``Write``) and the session's holder (``Record``).

        Raises:
            InvalidTransition: the rules do not allow it; nothing changed.
        """
        transition = m.apply(self.state, event, resume_window=self._resume_window)
        self.state = transition.state
        self._settle_requests()
        self._reroute()
        out: list[RoomEffect] = []
        for effect in transition.effects:
            self._plan(effect, out)
        self._show_requests(out)
        self._broadcast_state(out)
        return transition, out

    def _plan(self, effect: m.Effect, out: list[RoomEffect]) -> None:
        match effect:
            case m.Audit(action, details):
                out.append(Write(action, details))
            case m.AskCustomer(pid, _, _, permission, reason):
                slot = self.slot_for(pid)
                if self.agent is not None:
                    request_id = self._request_id(slot, permission)
                    request = self._consent_request(request_id, slot, permission, reason)
                    self._request_to_agent(request, out)
            case m.NewHolder():
                out.append(Record(effect))
            case m.Notify(pid, what, permission) if what in ("consent_refused", "control_moved"):
                peer = self.viewers.get(self._slots.get(pid, -1))
                if peer is not None:
                    text = f"{permission or 'consent'}: {what}"
                    out.append(Send(peer, msg.ErrorMessage(what, text)))
            case _:
                # Other notifications reach the engineers in the state broadcast. Key epochs
                # are the agent's: it rotates on leave or revoke from its own view of who may
                # see, never on the broker's word (docs/protocol.md, "Epochs").
                pass

    def _request_to_agent(self, request: msg.ConsentRequest, out: list[RoomEffect]) -> None:
        """Send the agent a consent request, at most once per id on each of its connections.

        A replacing connection is sent what is open, and the state machine may ask the same
        again when it counts the agent back (a late ``AgentDisconnected`` of the connection it
        replaced, then ``AgentConnected``): the agent keeps its prompt either way, but one
        question is one message.
        """
        agent = self.agent
        if agent is None:
            return
        if self._asked_on is not agent:
            self._asked_on, self._asked_ids = agent, set()
        if request.request_id not in self._asked_ids:
            self._asked_ids.add(request.request_id)
            out.append(Send(agent, request))

    def _request_id(self, slot: int, permission: str) -> str:
        """The id of the open request for `permission` in `slot`, made on first use.

        A request is sent again under the same id while it stays open (to an agent that
        reconnects, or replaces its connection): the agent then keeps its prompt, or repeats
        the answer it gave. A new id would tell it that a yes it already gave no longer counts,
        so it would drop the grant and ask the customer again (agent_client/consent.py, rule 1).
        """
        request_id = self._requests.get((slot, permission))
        if request_id is None:
            self._request_seq += 1
            request_id = self._requests[(slot, permission)] = f"req-{self._request_seq}"
        return request_id

    def _settle_requests(self) -> None:
        """Forget the ids of requests the state no longer holds open (answered, withdrawn,
        or their engineer gone), so that asking again later gets a new id."""
        open_now = {
            (self._slots[p.pid], permission.value)
            for p in self.state.participants
            if p.pid in self._slots
            for permission in p.requested
        }
        for key in [key for key in self._requests if key not in open_now]:
            del self._requests[key]

    def _consent_request(
        self, request_id: str, slot: int, permission: str, reason: str
    ) -> msg.ConsentRequest:
        name, level = self._names.get(slot, ("engineer", None))
        return msg.ConsentRequest(
            request_id=request_id,
            slot=slot,
            permission=msg.Permission(permission),
            engineer_name=name,
            engineer_level=msg.Level(level or "L1"),
            case_number=self.case_number,
            organisation=self.organisation,
            recorded=False,
            reason=reason,
        )

    def pending_requests(self) -> list[msg.ConsentRequest]:
        """Requests still unanswered, each under its one id, for an agent connection that
        replaces another (after a disconnection, ``AgentConnected`` asks them again)."""
        pending = []
        for participant in self.state.participants:
            slot = self._slots.get(participant.pid)
            for permission in sorted(participant.requested):
                if slot is None:
                    continue
                request_id = self._request_id(slot, permission.value)
                reason = participant.reason_for(permission)
                pending.append(self._consent_request(request_id, slot, permission.value, reason))
        return pending

    def _show_requests(self, out: list[RoomEffect]) -> None:
        """Keep the customer pages' view of open requests in step with the state.

        The page cannot answer (the agent's prompt does), but it shows what is being asked and
        why. A new request is sent to the pages as the agent got it; a request no longer open
        is closed with what became of it: ``consent_grant`` if the engineer now holds the
        permission, else ``consent_refuse``. Requests are shown only while the agent is here
        to ask them.
        """
        now: dict[tuple[int, str], msg.ConsentRequest] = {}
        if self.state.agent_connected:
            for request in self.pending_requests():
                now[request.slot, request.permission.value] = request
        for key, request_id in list(self._shown.items()):
            if now.get(key) is not None and now[key].request_id == request_id:
                continue
            del self._shown[key]
            slot, permission = key
            if Permission(permission) in self.grants_of(slot):
                closed: msg.Message = msg.ConsentGrant(request_id, slot, msg.Permission(permission))
            else:
                closed = msg.ConsentRefuse(request_id, slot, msg.Permission(permission))
            out.extend(Send(page, closed) for page in self.customers)
        for key, request in now.items():
            if key not in self._shown:
                self._shown[key] = request.request_id
                out.extend(Send(page, request) for page in self.customers)

    def answer(self, slot: int, permission: str) -> ParticipantId | None:
        """Who a consent answer from the agent is about; the request is then settled."""
        self._requests.pop((slot, permission), None)
        return self.participant_at(slot)

    def remember(self, peer: Peer) -> None:
        self._names[peer.slot] = (peer.display_name, peer.level)

    # --- routing --------------------------------------------------------------------------

    def _reroute(self) -> None:
        state = self.state
        # A peer the broker is closing (access revoked, token expired, replaced) has no route,
        # even while the state machine still counts it: its departure is applied later.
        self.frame_targets = tuple(
            peer
            for slot, peer in self.viewers.items()
            if not peer.closed
            and peer not in self._cut
            and (pid := self.participant_at(slot)) is not None
            and m.may_receive_frames(state, pid)
        )
        self.controller = next(
            (
                peer
                for slot, peer in self.viewers.items()
                if not peer.closed
                and peer not in self._cut
                and (pid := self.participant_at(slot)) is not None
                and m.may_send_input(state, pid)
            ),
            None,
        )

    def reroute(self) -> None:
        """Recompute after a peer came or went (the state may be unchanged)."""
        self._reroute()

    def state_message(self) -> msg.State:
        state = self.state
        viewing = tuple(sorted(self._slots[p] for p in state.viewers if p in self._slots))
        controller = state.controller
        phase = state.phase
        return msg.State(
            phase=phase.value,
            viewing_slots=viewing,
            controller_slot=self._slots.get(controller) if controller else None,
        )

    def _broadcast_state(self, out: list[RoomEffect]) -> None:
        current = self.state_message()
        if current == self._last_state:
            return
        self._last_state = current
        out.extend(Send(peer, current) for peer in self.everyone())

    def everyone(self) -> list[Peer]:
        peers = [*self.viewers.values(), *self.customers]
        if self.agent is not None:
            peers.append(self.agent)
        return peers

    def greeting(self, peer: Peer) -> list[Send]:
        """What a newly connected peer needs: its slot, the state, who is here, their keys."""
        out: list[msg.Message] = [
            msg.Welcome(
                slot=peer.slot,
                participant=peer.participant,
                session_id=self.session_id,
                case_number=self.case_number,
                organisation=self.organisation,
            ),
            self.state_message(),
        ]
        if self.agent is not None and peer is not self.agent:
            out.append(self.agent_join())
        out += [self.join_message(other) for other in self.viewers.values() if other is not peer]
        if self.chat_page is not None and peer.kind != "customer":
            out.append(_CUSTOMER_JOIN)
        if peer.kind == "customer":
            out += [
                request
                for request in self.pending_requests()
                if self._shown.get((request.slot, request.permission.value)) == request.request_id
            ]
        # Only keys of who is here now: a departed viewer's key would skew the read-back words.
        present = set(self.viewers) | ({AGENT_SLOT} if self.agent is not None else set())
        if self.chat_page is not None:
            present.add(CUSTOMER_SLOT)
        out += [
            key
            for (slot, _), key in sorted(self.public_keys.items())
            if slot != peer.slot and slot in present
        ]
        return [Send(peer, message) for message in out]

    # --- the customer page's chat key -----------------------------------------------------

    def customer_key(self, page: Peer, key: msg.PublicKeyAnnounce) -> list[RoomEffect]:
        """A customer page announced its key: it now holds the customer's chat.

        The agent and the engineers see the customer slot as a participant (``join``, then
        the key), so their read-back covers the page's key exactly while it is here, with no
        change to how they count keys. A different key first ends the previous one (``leave``):
        a viewer keeps one key per slot and algorithm, and two page keys would skew its words.
        """
        current = [index for index in self.public_keys if index[0] == CUSTOMER_SLOT]
        if self.chat_page is page and [self.public_keys[i] for i in current] == [key]:
            return []
        out: list[RoomEffect] = []
        if self.chat_page is not None:
            out += self._to_staff_and_agent(_customer_leave("replaced by another page"))
        for index in current:
            del self.public_keys[index]
        self.public_keys[CUSTOMER_SLOT, key.algorithm.value] = key
        self.chat_page = page
        out += self._to_staff_and_agent(_CUSTOMER_JOIN)
        out += self._to_staff_and_agent(key)
        return out

    def _to_staff_and_agent(self, message: msg.Message) -> list[Send]:
        # Customer pages are left out: the page's own key is never echoed to a page.
        return [Send(peer, message) for peer in self.everyone() if peer.kind != "customer"]

    def join_message(self, peer: Peer) -> msg.Join:
        return msg.Join(
            slot=peer.slot,
            participant=peer.participant,
            display_name=peer.display_name or peer.participant,
            role=msg.Role.VIEWER,
            level=msg.Level(peer.level) if peer.level else None,
        )

    def _to_all(self, message: msg.Message, *, but: Peer | None = None) -> list[RoomEffect]:
        return [Send(peer, message) for peer in self.everyone() if peer is not but]

    @property
    def phase(self) -> Phase:
        return self.state.phase

    def actor_for(self, peer: Peer | None, client_addr: str | None = None) -> Actor:
        if peer is None:
            return Actor.system()
        if peer.kind == "viewer":
            return Actor(peer.participant, peer.role, client_addr)
        return Actor(f"{peer.kind}:{self.session_id}", peer.kind, client_addr)

    def now(self) -> Any:
        return self._clock()

    def grants_of(self, slot: int) -> frozenset[Permission]:
        pid = self.participant_at(slot)
        participant = self.state.participant(pid) if pid else None
        return participant.grants if participant else frozenset()
