"""The agent's own record of what the customer allowed: the second enforcement point.

Pure: no I/O, no clock, no logging. The broker enforces consent too, but the agent does not
trust it (DESIGN.md, "Two enforcement points"): a compromised broker must not be able to start
viewing or inject input. So the agent injects only for a slot it itself recorded a control
grant for, and sends frames only while a viewer it itself admitted exists and the session is
not paused. Every method returns a `Change` that says what the shell must do (messages to
send, a prompt to show or withdraw, a new key epoch, a keyframe); the queries
`may_inject`, `admitted_viewers` and `frames_allowed` are what the shell checks before acting.

Rules, mirroring the broker's machine (broker/sessions/machine.py) from the customer's side:

1. A grant exists only because the customer answered yes (`answer`) to a pending request of
   that engineer (slot and participant name). A request the broker re-sends with the same
   `request_id` is answered again without a prompt (the first answer may have been lost in a
   dropped connection); a *new* request for a permission already held means the broker no
   longer counts it, so the stale grant is dropped and the customer is asked afresh.
2. CONTROL needs VIEW: losing VIEW loses everything. At most one slot holds CONTROL; granting
   it to another slot takes it from the first.
3. Revocation always succeeds, whatever the state, and takes effect before the method returns.
4. The broker may only narrow what the customer granted, never widen it: `leave`, relayed
   revocations, relayed pause and end are applied; a relayed resume cannot lift a pause the
   customer made at this machine; a `state` that stops listing a grant the broker had already
   confirmed drops it here too.
5. `end` is terminal: no grant, no prompt and no message afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from rsb_protocol.framing import AGENT_SLOT, MAX_VIEWER_SLOT
from rsb_protocol.messages import (
    ConsentGrant,
    ConsentRefuse,
    ConsentRequest,
    ConsentRevoke,
    End,
    Level,
    Message,
    Pause,
    Permission,
    Resume,
    Role,
)

__all__ = [
    "SUPPORTED_PERMISSIONS",
    "AgentConsent",
    "Change",
    "NOTHING",
    "Origin",
    "PendingRequest",
]

VIEW, CONTROL = Permission.VIEW, Permission.CONTROL
SUPPORTED_PERMISSIONS = frozenset({VIEW, CONTROL})
"""What this agent can do for an engineer; requests for anything else are refused at once."""


class Origin(Enum):
    """Where a pause, resume, revocation or end came from."""

    LOCAL = "local"
    """The customer, at this machine (prompt or command)."""
    REMOTE = "remote"
    """Relayed by the broker (the customer page, or the broker itself): may only narrow."""


@dataclass(frozen=True)
class PendingRequest:
    """A consent request waiting for the customer's answer: everything the prompt shows.

    Attributes:
        request_id: The broker's id; the answer quotes it.
        slot: The engineer's slot.
        participant: The engineer's participant name from `join` (what the grant is bound to).
        permission: VIEW or CONTROL.
        engineer_name: Full name shown to the customer.
        engineer_level: Support level shown to the customer.
        case_number: The case the customer was given on the phone.
        organisation: The support organisation.
        recorded: Whether the session is recorded for later review.
        reason: What the engineer said they need it for ("" if nothing was said).
    """

    request_id: str
    slot: int
    participant: str
    permission: Permission
    engineer_name: str
    engineer_level: Level
    case_number: str
    organisation: str
    recorded: bool
    reason: str = ""


@dataclass(frozen=True)
class Change:
    """What the shell must do after one consent event.

    Attributes:
        send: Control messages for the broker, in order.
        ask: A new request to put to the customer.
        withdrawn: Requests whose prompt must close unanswered.
        rekey: Start a new key epoch and wrap it only to `admitted_viewers()`.
        keyframe: Send a whole frame next (someone new can see, or frames were held back).
        notices: One-line messages for the customer.
    """

    send: tuple[Message, ...] = ()
    ask: PendingRequest | None = None
    withdrawn: tuple[PendingRequest, ...] = ()
    rekey: bool = False
    keyframe: bool = False
    notices: tuple[str, ...] = ()

    def __add__(self, other: Change) -> Change:
        return Change(
            self.send + other.send,
            other.ask or self.ask,
            self.withdrawn + other.withdrawn,
            self.rekey or other.rekey,
            self.keyframe or other.keyframe,
            self.notices + other.notices,
        )


NOTHING = Change()


@dataclass
class _Engineer:
    participant: str
    display_name: str
    level: Level | None
    grants: dict[Permission, str] = field(default_factory=dict)
    """Permission -> the request_id the customer said yes to."""
    confirmed: set[Permission] = field(default_factory=set)
    """Grants a broker `state` has shown; only these may be narrowed away by a later state."""


class AgentConsent:
    """The customer's decisions, per engineer slot, as this agent recorded them."""

    def __init__(self, *, supported: frozenset[Permission] = SUPPORTED_PERMISSIONS) -> None:
        """Start with nobody admitted, nothing pending, not paused.

        Args:
            supported: Permissions this agent can honour (CONTROL is left out when no input
                backend works on this machine); others are refused without a prompt.
        """
        self._supported = supported
        self._engineers: dict[int, _Engineer] = {}
        self._pending: dict[tuple[int, Permission], PendingRequest] = {}
        self._paused: Origin | None = None
        self._ended = False

    # Queries: what the shell checks right before it acts.

    def may_inject(self, slot: int) -> bool:
        """True only if the customer granted CONTROL to the engineer now in `slot`."""
        if self._ended or self._paused is not None:
            return False
        engineer = self._engineers.get(slot)
        return engineer is not None and CONTROL in engineer.grants

    def admitted_viewers(self) -> frozenset[int]:
        """Slots the customer let see the screen (paused or not): who gets the group key."""
        if self._ended:
            return frozenset()
        return frozenset(s for s, e in self._engineers.items() if VIEW in e.grants)

    def frames_allowed(self) -> bool:
        """True when at least one admitted viewer exists and the session is not paused."""
        return self._paused is None and bool(self.admitted_viewers())

    @property
    def controller(self) -> int | None:
        """The slot holding CONTROL, if any."""
        for slot, engineer in self._engineers.items():
            if CONTROL in engineer.grants:
                return slot
        return None

    @property
    def paused(self) -> bool:
        """True while paused, from either side."""
        return self._paused is not None

    @property
    def ended(self) -> bool:
        """True once the session ended; it never becomes False again."""
        return self._ended

    def participant(self, slot: int) -> str | None:
        """The participant name of the engineer in `slot`, if one is there."""
        engineer = self._engineers.get(slot)
        return engineer.participant if engineer else None

    def display_name(self, slot: int) -> str | None:
        """The name the engineer in `slot` joined with, if one is there."""
        engineer = self._engineers.get(slot)
        return engineer.display_name if engineer else None

    def pending(self) -> tuple[PendingRequest, ...]:
        """Requests still waiting for an answer."""
        return tuple(self._pending.values())

    # Roster, as the broker reports it.

    def joined(self, slot: int, participant: str, display_name: str, level: Level | None) -> Change:
        """An engineer joined in `slot` (or the broker replayed the roster after a reconnect).

        The same participant again keeps its grants (a replay); another participant in that
        slot starts from nothing, so no one inherits a stranger's consent.
        """
        if self._ended or not AGENT_SLOT < slot <= MAX_VIEWER_SLOT:
            return NOTHING
        known = self._engineers.get(slot)
        if known is not None and known.participant == participant:
            known.display_name, known.level = display_name, level
            return NOTHING
        change = self._drop(slot) if known is not None else NOTHING
        self._engineers[slot] = _Engineer(participant, display_name, level)
        return change

    def away(self, slot: int) -> Change:
        """The engineer in `slot` dropped and may resume: grants and requests stay.

        The broker keeps them for its resume window and lists the slot in `state` meanwhile;
        when the window runs out its next `state` no longer does (`observe_state`). The group
        key moves on without the engineer until its key comes back.
        """
        engineer = self._engineers.get(slot)
        return Change(rekey=engineer is not None and VIEW in engineer.grants)

    def left(self, slot: int) -> Change:
        """The engineer in `slot` left or was removed: grants and requests go at once."""
        return self._drop(slot)

    def observe_state(
        self, phase: str, viewing_slots: tuple[int, ...], controller_slot: int | None
    ) -> Change:
        """Apply a broker `state`: it may confirm grants, or narrow confirmed ones, never widen.

        A grant the broker has not yet listed is left alone: the customer's answer may still
        be on its way to the broker, and dropping it would lose a yes.
        """
        if self._ended:
            return NOTHING
        if phase == "ended":
            return self.end(Origin.REMOTE, "the session ended")
        if phase == "paused":
            # Whether a paused state lists viewers is the broker's business; pause is handled
            # by the pause message, and grants survive a pause.
            return NOTHING
        change = NOTHING
        for slot, engineer in list(self._engineers.items()):
            listed = {VIEW: slot in viewing_slots, CONTROL: controller_slot == slot}
            for permission, shown in listed.items():
                if permission not in engineer.grants:
                    continue
                if shown:
                    engineer.confirmed.add(permission)
                elif permission in engineer.confirmed:
                    change += self._lose(slot, permission, notify=False)
        return change

    # Requests and the customer's answers.

    def request(self, message: ConsentRequest) -> Change:
        """The broker asks on an engineer's behalf; decide whether the customer must be asked.

        Returns:
            A change whose `ask` is the request to prompt for, or whose `send` already answers
            it (an automatic refusal, or a repeat of an answer the customer already gave).
        """
        slot, permission = message.slot, message.permission
        if self._ended:
            return NOTHING
        engineer = self._engineers.get(slot)
        if engineer is None:
            return _refuse(message, "no engineer has joined in that slot")
        if message.engineer_name != engineer.display_name or (
            engineer.level is not None and engineer.level != message.engineer_level
        ):
            # The prompt must name the person who will see the screen; a request naming
            # someone else than the one who joined is a broker bug or a lie, never a yes.
            return _refuse(message, "the request does not name the engineer who joined")
        if permission not in self._supported:
            return _refuse(message, f"this agent does not offer {permission.value}")
        if permission is not VIEW and VIEW not in engineer.grants:
            return _refuse(message, "viewing must be allowed first")
        change = NOTHING
        held = engineer.grants.get(permission)
        if held == message.request_id:
            return Change(send=(ConsentGrant(message.request_id, slot, permission),))
        if held is not None:
            change = self._lose(slot, permission, notify=False)
        key = (slot, permission)
        already_asked = key in self._pending
        # A repeated request (after a reconnect) keeps the open prompt; the answer goes out
        # under the newest id the broker knows.
        pending = _pending_from(message, engineer.participant)
        self._pending[key] = pending
        return change if already_asked else change + Change(ask=pending)

    def answer(self, request: PendingRequest, allow: bool, reason: str = "") -> Change:
        """Record the customer's answer to a prompt, then tell the broker.

        An answer to a request that is no longer pending (withdrawn, engineer gone, session
        ended) does nothing.
        """
        key = (request.slot, request.permission)
        current = self._pending.get(key)
        if self._ended or current is None or current.participant != request.participant:
            return NOTHING
        del self._pending[key]
        slot, permission, request_id = current.slot, current.permission, current.request_id
        engineer = self._engineers[slot]
        if allow and permission is CONTROL and VIEW not in engineer.grants:
            allow, reason = False, "viewing was withdrawn"
        name = engineer.display_name
        if not allow:
            # Say what happened: after typing an answer the customer must see it was taken.
            return Change(
                send=(ConsentRefuse(request_id, slot, permission, reason),),
                notices=(
                    f"Refused: {name} gets no {permission.value} ({reason or 'your answer'}).",
                ),
            )
        change = NOTHING
        if permission is CONTROL:
            previous = self.controller
            if previous is not None and previous != slot:
                change += self._lose(previous, CONTROL, notify=False)
        engineer.grants[permission] = request_id  # recorded here before the broker hears it
        notice = (
            f"Allowed: {name} can now see your screen (type v to stop, p to pause)."
            if permission is VIEW
            else f"Allowed: {name} now controls your mouse and keyboard (type r to take it back)."
        )
        granted = Change(send=(ConsentGrant(request_id, slot, permission),), notices=(notice,))
        if permission is VIEW:
            granted += Change(rekey=True, keyframe=True)
        return change + granted

    # The customer's commands (LOCAL) and the broker's relays (REMOTE).

    def revoke(self, slot: int, permission: Permission, origin: Origin, reason: str = "") -> Change:
        """Withdraw a permission (and its open request) from `slot`; always succeeds."""
        if self._ended:
            return NOTHING
        change = self._lose(slot, permission, notify=origin is Origin.LOCAL, reason=reason)
        if origin is Origin.LOCAL and not change.send:
            # Nothing was held here; tell the broker anyway, in case it thinks otherwise.
            change += Change(send=(ConsentRevoke(slot, permission, reason),))
        return change

    def revoke_control(self, reason: str = "") -> Change:
        """The customer takes control back from whoever holds it."""
        slot = self.controller
        if slot is None:
            return Change(notices=("Nobody has control.",))
        return self.revoke(slot, CONTROL, Origin.LOCAL, reason)

    def revoke_all_viewing(self, reason: str = "") -> Change:
        """The customer stops every engineer from seeing the screen (and controlling it)."""
        viewers = sorted(self.admitted_viewers())
        if not viewers:
            return Change(notices=("Nobody is viewing.",))
        change = NOTHING
        for slot in viewers:
            change += self.revoke(slot, VIEW, Origin.LOCAL, reason)
        return change

    def pause(self, origin: Origin, reason: str = "") -> Change:
        """Stop frames and input until resumed; grants are kept."""
        if self._ended:
            return NOTHING
        if self._paused is not None:
            if origin is Origin.LOCAL and self._paused is Origin.REMOTE:
                self._paused = Origin.LOCAL  # now only the customer here can lift it
            return NOTHING
        self._paused = origin
        send = (Pause(Role.AGENT, reason),) if origin is Origin.LOCAL else ()
        return Change(send=send, notices=("Paused: nothing is shared and no input is accepted.",))

    def resume(self, origin: Origin) -> Change:
        """Let frames and consented input flow again.

        A relayed resume cannot lift a pause the customer made at this machine: the broker
        must not be able to undo what the customer did here.
        """
        if self._ended or self._paused is None:
            return NOTHING
        if origin is Origin.REMOTE and self._paused is Origin.LOCAL:
            return Change(notices=("The support side asked to resume; press p to resume.",))
        self._paused = None
        send = (Resume(Role.AGENT),) if origin is Origin.LOCAL else ()
        return Change(send=send, keyframe=True, notices=("Resumed.",))

    def end(self, origin: Origin, reason: str = "") -> Change:
        """End the session for good: every grant and request goes, nothing follows."""
        if self._ended:
            return NOTHING
        withdrawn = tuple(self._pending.values())
        self._ended = True
        self._engineers.clear()
        self._pending.clear()
        send = (End(Role.AGENT, reason),) if origin is Origin.LOCAL else ()
        return Change(send=send, withdrawn=withdrawn, notices=("The session has ended.",))

    # Internals.

    def _drop(self, slot: int) -> Change:
        engineer = self._engineers.pop(slot, None)
        withdrawn = tuple(p for key, p in list(self._pending.items()) if key[0] == slot)
        for request in withdrawn:
            del self._pending[(request.slot, request.permission)]
        had_view = engineer is not None and VIEW in engineer.grants
        return Change(withdrawn=withdrawn, rekey=had_view)

    def _lose(self, slot: int, permission: Permission, *, notify: bool, reason: str = "") -> Change:
        """Take `permission` (all of them, for VIEW) from `slot` and withdraw its requests."""
        lost = (VIEW, CONTROL) if permission is VIEW else (permission,)
        # Losing VIEW withdraws every open request of that slot; CONTROL only its own.
        asked = list(Permission) if permission is VIEW else [permission]
        withdrawn = tuple(self._pending.pop((slot, p)) for p in asked if (slot, p) in self._pending)
        engineer = self._engineers.get(slot)
        held = [p for p in lost if engineer is not None and p in engineer.grants]
        if engineer is not None:
            for p in lost:
                engineer.grants.pop(p, None)
                engineer.confirmed.discard(p)
        if not held:
            return Change(withdrawn=withdrawn)
        name = engineer.display_name if engineer else f"slot {slot}"
        what = "can no longer see your screen" if permission is VIEW else "no longer has control"
        send = (ConsentRevoke(slot, permission, reason),) if notify else ()
        # Losing VIEW or CONTROL both need a new epoch: the key or the controlling epoch goes.
        return Change(send=send, withdrawn=withdrawn, rekey=True, notices=(f"{name} {what}.",))


def _refuse(message: ConsentRequest, reason: str) -> Change:
    return Change(
        send=(ConsentRefuse(message.request_id, message.slot, message.permission, reason),)
    )


def _pending_from(message: ConsentRequest, participant: str) -> PendingRequest:
    return PendingRequest(
        message.request_id,
        message.slot,
        participant,
        message.permission,
        message.engineer_name,
        message.engineer_level,
        message.case_number,
        message.organisation,
        message.recorded,
        message.reason,
    )
