"""The agent's own consent record: grants only from the customer's yes, revocation at once, end
terminal, and a broker that can narrow but never widen what the customer allowed."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent_client.consent import AgentConsent, Change, Origin, PendingRequest
from rsb_protocol.messages import (
    ConsentGrant,
    ConsentRefuse,
    ConsentRequest,
    ConsentRevoke,
    End,
    Level,
    Pause,
    Permission,
    Resume,
    Role,
)

VIEW, CONTROL = Permission.VIEW, Permission.CONTROL
SLOTS = (1, 2, 3)


def request(
    slot: int,
    permission: Permission = VIEW,
    request_id: str | None = None,
    name: str | None = None,
    level: Level = Level.L2,
) -> ConsentRequest:
    return ConsentRequest(
        request_id or f"req-{slot}-{permission.value}",
        slot,
        permission,
        name or f"Engineer {slot}",
        level,
        "C-000123",
        "Acme Support",
        False,
    )


def join(consent: AgentConsent, slot: int, participant: str | None = None) -> Change:
    return consent.joined(slot, participant or f"eng{slot}", f"Engineer {slot}", Level.L2)


def ask(consent: AgentConsent, slot: int, permission: Permission = VIEW) -> PendingRequest:
    change = consent.request(request(slot, permission))
    assert change.ask is not None, change
    return change.ask


def admit(consent: AgentConsent, slot: int, *, control: bool = False) -> None:
    join(consent, slot)
    consent.answer(ask(consent, slot), True)
    if control:
        consent.answer(ask(consent, slot, CONTROL), True)


def test_nothing_is_allowed_before_the_customer_says_yes() -> None:
    consent = AgentConsent()
    join(consent, 3)
    pending = ask(consent, 3)
    assert not consent.frames_allowed() and not consent.admitted_viewers()
    assert not consent.may_inject(3)
    change = consent.answer(pending, True)
    assert change.send == (ConsentGrant("req-3-view", 3, VIEW),)
    assert change.rekey and change.keyframe
    assert consent.admitted_viewers() == {3} and consent.frames_allowed()
    assert not consent.may_inject(3)


def test_a_refusal_grants_nothing_and_tells_the_broker() -> None:
    consent = AgentConsent()
    join(consent, 3)
    change = consent.answer(ask(consent, 3), False, "not now")
    assert change.send == (ConsentRefuse("req-3-view", 3, VIEW, "not now"),)
    assert not consent.admitted_viewers() and not change.rekey


def test_every_answer_is_acknowledged_to_the_customer() -> None:
    # Regression: after typing y the terminal showed nothing, as if the answer was lost.
    consent = AgentConsent()
    join(consent, 3)
    view = consent.answer(ask(consent, 3), True)
    assert view.notices == (
        "Allowed: Engineer 3 can now see your screen (type v to stop, p to pause).",
    )
    control = consent.answer(ask(consent, 3, CONTROL), True)
    assert control.notices == (
        "Allowed: Engineer 3 now controls your mouse and keyboard (type r to take it back).",
    )
    join(consent, 2)
    refused = consent.answer(ask(consent, 2), False, "declined by the customer")
    assert refused.notices == ("Refused: Engineer 2 gets no view (declined by the customer).",)


def refusal(change: Change) -> str:
    (sent,) = change.send
    assert isinstance(sent, ConsentRefuse)
    return sent.reason


def test_requests_that_cannot_be_honoured_are_refused_without_a_prompt() -> None:
    consent = AgentConsent(supported=frozenset({VIEW}))
    assert refusal(consent.request(request(4))) == "no engineer has joined in that slot"
    join(consent, 3)
    for message, why in [
        (request(3, name="Mallory"), "the request does not name the engineer who joined"),
        (request(3, level=Level.L3), "the request does not name the engineer who joined"),
        (request(3, CONTROL), "this agent does not offer control"),
        (request(3, Permission.FILES), "this agent does not offer files"),
    ]:
        change = consent.request(message)
        assert change.ask is None
        assert isinstance(change.send[0], ConsentRefuse) and change.send[0].reason == why
    assert AgentConsent().request(request(3, CONTROL)).ask is None  # nobody joined
    full = AgentConsent()
    join(full, 3)
    assert refusal(full.request(request(3, CONTROL))) == "viewing must be allowed first"


def test_a_repeated_request_keeps_one_prompt_and_answers_under_the_newest_id() -> None:
    consent = AgentConsent()
    join(consent, 3)
    first = ask(consent, 3)
    again = consent.request(request(3, request_id="req-again"))
    assert again.ask is None
    assert consent.answer(first, True).send == (ConsentGrant("req-again", 3, VIEW),)


def test_a_request_already_answered_yes_is_answered_again_without_a_prompt() -> None:
    consent = AgentConsent()
    admit(consent, 3)
    change = consent.request(request(3))  # the same id, re-sent after a reconnect
    assert change.ask is None and change.send == (ConsentGrant("req-3-view", 3, VIEW),)


def test_a_new_request_for_a_held_permission_drops_the_stale_grant_and_asks_again() -> None:
    consent = AgentConsent()
    admit(consent, 3)
    change = consent.request(request(3, request_id="req-fresh"))
    assert change.ask is not None and change.rekey
    assert not consent.admitted_viewers()


def test_revoking_control_stops_injection_at_once_and_needs_a_new_epoch() -> None:
    consent = AgentConsent()
    admit(consent, 3, control=True)
    assert consent.may_inject(3) and consent.controller == 3
    change = consent.revoke_control("mine now")
    assert not consent.may_inject(3) and consent.controller is None
    assert change.rekey and change.send == (ConsentRevoke(3, CONTROL, "mine now"),)
    assert consent.admitted_viewers() == {3}  # still sees the screen
    assert consent.revoke_control().notices == ("Nobody has control.",)


def test_losing_view_loses_control_too() -> None:
    consent = AgentConsent()
    admit(consent, 3, control=True)
    admit(consent, 4)
    change = consent.revoke_all_viewing()
    assert [m.slot for m in change.send if isinstance(m, ConsentRevoke)] == [3, 4]
    assert not consent.may_inject(3) and not consent.frames_allowed()
    assert consent.revoke_all_viewing().notices == ("Nobody is viewing.",)


def test_control_moves_rather_than_doubles() -> None:
    consent = AgentConsent()
    admit(consent, 3, control=True)
    admit(consent, 4)
    change = consent.answer(ask(consent, 4, CONTROL), True)
    assert change.rekey  # slot 3 lost control: its controlling epoch must go
    assert consent.controller == 4 and not consent.may_inject(3) and consent.may_inject(4)


def test_control_granted_after_view_was_withdrawn_is_refused() -> None:
    consent = AgentConsent()
    admit(consent, 3)
    pending = ask(consent, 3, CONTROL)
    consent.revoke(3, VIEW, Origin.REMOTE)
    assert consent.answer(pending, True).send == ()  # the request was withdrawn with the view
    assert not consent.may_inject(3)


def test_leave_and_a_new_participant_in_the_slot_start_from_nothing() -> None:
    consent = AgentConsent()
    admit(consent, 3, control=True)
    change = join(consent, 3, "someone-else")
    assert change.rekey and not consent.admitted_viewers() and not consent.may_inject(3)
    admit(consent, 4)
    open_request = consent.request(request(4, CONTROL)).ask
    change = consent.left(4)
    assert change.rekey and change.withdrawn == (open_request,)
    assert consent.participant(4) is None


def test_joining_again_as_the_same_participant_keeps_the_grants() -> None:
    consent = AgentConsent()
    admit(consent, 3)
    assert join(consent, 3) == Change()
    assert consent.admitted_viewers() == {3}


def test_pause_holds_frames_and_input_and_a_relayed_resume_cannot_lift_a_local_pause() -> None:
    consent = AgentConsent()
    admit(consent, 3, control=True)
    change = consent.pause(Origin.LOCAL, "phone call")
    assert change.send == (Pause(Role.AGENT, "phone call"),)
    assert not consent.frames_allowed() and not consent.may_inject(3)
    assert consent.admitted_viewers() == {3}  # grants survive a pause
    refused = consent.resume(Origin.REMOTE)
    assert refused.send == () and consent.paused
    resumed = consent.resume(Origin.LOCAL)
    assert resumed.send == (Resume(Role.AGENT),) and resumed.keyframe
    assert consent.frames_allowed() and consent.may_inject(3)


def test_a_relayed_pause_is_lifted_by_a_relayed_resume_unless_the_customer_paused_here_too() -> (
    None
):
    consent = AgentConsent()
    admit(consent, 3)
    assert consent.pause(Origin.REMOTE).send == ()
    assert consent.resume(Origin.REMOTE).keyframe and not consent.paused
    consent.pause(Origin.REMOTE)
    consent.pause(Origin.LOCAL)
    consent.resume(Origin.REMOTE)
    assert consent.paused


def test_end_is_terminal() -> None:
    consent = AgentConsent()
    admit(consent, 3)
    open_request = ask(consent, 3, CONTROL)
    change = consent.end(Origin.LOCAL, "done")
    assert change.send == (End(Role.AGENT, "done"),) and change.withdrawn == (open_request,)
    assert consent.ended and not consent.frames_allowed() and not consent.may_inject(3)
    join(consent, 5)
    assert consent.request(request(5)) == Change()
    assert consent.resume(Origin.LOCAL) == Change()
    assert consent.revoke(3, VIEW, Origin.LOCAL) == Change()  # succeeds: nothing is held
    assert consent.end(Origin.LOCAL) == Change()


def test_a_state_confirms_grants_and_may_narrow_confirmed_ones_only() -> None:
    consent = AgentConsent()
    admit(consent, 3, control=True)
    # The broker has not yet seen the customer's yes: an older state must not undo it.
    assert consent.observe_state("observing", (), None) == Change()
    assert consent.may_inject(3)
    consent.observe_state("controlling", (3,), 3)
    change = consent.observe_state("observing", (3,), None)  # control released at the broker
    assert change.rekey and not consent.may_inject(3) and consent.admitted_viewers() == {3}
    assert consent.observe_state("paused", (), None) == Change()
    assert consent.admitted_viewers() == {3}
    consent.observe_state("observing", (), None)
    assert not consent.admitted_viewers()
    consent.observe_state("ended", (), None)
    assert consent.ended


def test_a_revocation_of_something_never_granted_still_reaches_the_broker() -> None:
    consent = AgentConsent()
    change = consent.revoke(7, CONTROL, Origin.LOCAL)
    assert change.send == (ConsentRevoke(7, CONTROL, ""),) and not change.rekey
    assert consent.revoke(7, CONTROL, Origin.REMOTE) == Change()


class ConsentWalk(RuleBasedStateMachine):
    """Random walks over the consent record against the test's own log of the customer's yeses.

    The model remembers, per slot, which permissions the customer answered yes to since that
    slot's participant last changed, and forgets them exactly where the rules say they go.
    The record may never allow more than the model (injection only after this agent's own
    grant for that slot), and after `end` nothing is allowed ever again.
    """

    def __init__(self) -> None:
        super().__init__()
        self.consent = AgentConsent()
        self.granted: dict[int, set[Permission]] = {}
        self.participants: dict[int, str] = {}
        self.asked: list[PendingRequest] = []
        self.paused = False
        self.ended = False
        self.request_ids = 0

    @rule(slot=st.sampled_from(SLOTS), who=st.sampled_from(("a", "b")))
    def joined(self, slot: int, who: str) -> None:
        if self.participants.get(slot) != who:
            self.granted.pop(slot, None)
        if not self.ended:
            self.participants[slot] = who
        self.consent.joined(slot, who, f"Engineer {slot}", Level.L1)

    @rule(slot=st.sampled_from(SLOTS))
    def left(self, slot: int) -> None:
        self.granted.pop(slot, None)
        self.participants.pop(slot, None)
        self.consent.left(slot)

    @rule(slot=st.sampled_from(SLOTS), permission=st.sampled_from((VIEW, CONTROL)))
    def requested(self, slot: int, permission: Permission) -> None:
        self.request_ids += 1
        message = ConsentRequest(
            f"r{self.request_ids}",
            slot,
            permission,
            f"Engineer {slot}",
            Level.L1,
            "C-1",
            "O",
            False,
        )
        held = self.granted.get(slot, set())
        if permission in held:  # a fresh id for a held permission drops it
            held -= {VIEW, CONTROL} if permission is VIEW else {CONTROL}
        change = self.consent.request(message)
        if change.ask is not None:
            self.asked.append(change.ask)

    @precondition(lambda self: self.asked)
    @rule(data=st.data(), allow=st.booleans(), stale=st.booleans())
    def answered(self, data: st.DataObject, allow: bool, stale: bool) -> None:
        # Mostly an open request; sometimes an old one, which must not grant anything.
        choices = self.asked if stale or not self.consent.pending() else self.consent.pending()
        self.answer(data.draw(st.sampled_from(choices)), allow)

    @rule(slot=st.sampled_from(SLOTS))
    def granted_control(self, slot: int) -> None:
        """The whole happy path at once, so walks reach control often."""
        self.joined(slot, self.participants.get(slot, "a"))
        for permission in (VIEW, CONTROL):
            self.requested(slot, permission)
            for pending in self.consent.pending():
                if (pending.slot, pending.permission) == (slot, permission):
                    self.answer(pending, True)

    def answer(self, pending: PendingRequest, allow: bool) -> None:
        was_open = any(
            (p.slot, p.permission, p.participant)
            == (pending.slot, pending.permission, pending.participant)
            for p in self.consent.pending()
        )
        change = self.consent.answer(pending, allow)
        granted = any(isinstance(m, ConsentGrant) for m in change.send)
        assert not granted or (allow and was_open)
        if granted:
            if pending.permission is CONTROL:
                for perms in self.granted.values():
                    perms.discard(CONTROL)
            self.granted.setdefault(pending.slot, set()).add(pending.permission)

    @rule(slot=st.sampled_from(SLOTS), permission=st.sampled_from((VIEW, CONTROL)))
    def revoked(self, slot: int, permission: Permission) -> None:
        origin = Origin.LOCAL if slot % 2 else Origin.REMOTE
        self.consent.revoke(slot, permission, origin)
        lost = {VIEW, CONTROL} if permission is VIEW else {CONTROL}
        self.granted.get(slot, set()).difference_update(lost)
        assert not self.consent.may_inject(slot)  # at once, whatever came before
        if permission is VIEW:
            assert slot not in self.consent.admitted_viewers()

    @rule(viewing=st.sets(st.sampled_from(SLOTS)), controller=st.sampled_from((None, *SLOTS)))
    def state(self, viewing: set[int], controller: int | None) -> None:
        self.consent.observe_state("observing", tuple(sorted(viewing)), controller)
        for slot, perms in self.granted.items():  # narrowing only: mirror what was kept
            if slot not in self.consent.admitted_viewers():
                perms.clear()
            elif self.consent.controller != slot:
                perms.discard(CONTROL)

    @rule(local=st.booleans())
    def pause(self, local: bool) -> None:
        self.consent.pause(Origin.LOCAL if local else Origin.REMOTE)
        self.paused = not self.ended

    @rule()
    def resumed(self) -> None:
        self.consent.resume(Origin.LOCAL)
        self.paused = False

    @rule()
    def end(self) -> None:
        self.consent.end(Origin.LOCAL)
        self.ended = True
        self.granted.clear()

    @invariant()
    def never_more_than_the_customer_allowed(self) -> None:
        for slot in SLOTS:
            if self.consent.may_inject(slot):
                assert CONTROL in self.granted.get(slot, set()), slot
                assert VIEW in self.granted.get(slot, set()), slot
                assert not self.paused and not self.ended
        for slot in self.consent.admitted_viewers():
            assert VIEW in self.granted.get(slot, set()), slot
        controllers = [s for s in SLOTS if self.consent.controller == s]
        assert len(controllers) <= 1
        if self.ended:
            assert not self.consent.admitted_viewers() and not self.consent.frames_allowed()
            assert not self.consent.pending()
        if self.consent.frames_allowed():
            assert not self.paused and self.consent.admitted_viewers()


ConsentWalk.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
test_consent_walk = ConsentWalk.TestCase
