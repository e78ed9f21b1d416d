"""The routing table, checked exhaustively against the rules written out independently here.

Every (sender, frame type, slot) triple is looked up; the expected outcome comes from
``_expected``, a plain restatement of docs/protocol.md's routing rules, not from the table.
"""

from __future__ import annotations

import itertools

import pytest

from broker.relay import flow
from broker.relay.routing import (
    NO_ROUTE,
    ROUTES,
    Queue,
    Route,
    Sender,
    SlotIs,
    Target,
    Verdict,
    route,
    slot_is,
)
from rsb_protocol.framing import BROADCAST_SLOT, CUSTOMER_SLOT, FrameType

F = FrameType
SCREEN = {F.SCREEN_UPDATE, F.KEYFRAME, F.CURSOR}
VIEWERS = {Sender.VIEWER_WAITING, Sender.VIEWER_WATCHING, Sender.VIEWER_CONTROLLING}
SEEING = {Sender.VIEWER_WATCHING, Sender.VIEWER_CONTROLLING}
ALL = list(itertools.product(Sender, FrameType, SlotIs))


def _expected(sender: Sender, kind: FrameType, slot: SlotIs) -> tuple[Verdict, Target | None]:
    if sender is Sender.AGENT:
        if kind in SCREEN:
            return (
                (Verdict.FORWARD, Target.VIEWERS)
                if slot is SlotIs.BROADCAST
                else (
                    Verdict.REFUSE,
                    None,
                )
            )
        if kind is F.CHAT:
            return {
                SlotIs.BROADCAST: (Verdict.FORWARD, Target.VIEWERS),
                SlotIs.CUSTOMER: (Verdict.FORWARD, Target.CHAT_PAGE),
                SlotIs.OTHER: (Verdict.FORWARD, Target.SLOT_VIEWER),
            }.get(slot, (Verdict.REFUSE, None))
        if kind is F.KEY_WRAP:
            if slot is SlotIs.OTHER:
                return Verdict.FORWARD, Target.SLOT_VIEWER
            return (Verdict.DROP, None) if slot is not SlotIs.OWN else (Verdict.REFUSE, None)
        return Verdict.REFUSE, None  # input, ACKs and keyframe requests are the viewers'
    if sender in VIEWERS:
        if slot is not SlotIs.OWN:
            return Verdict.DROP_COUNTED, None  # a viewer speaks only as itself
        if kind in SCREEN or kind is F.KEY_WRAP:
            return Verdict.REFUSE, None
        if kind is F.INPUT:
            if sender is Sender.VIEWER_CONTROLLING:
                return Verdict.FORWARD, Target.AGENT
            return Verdict.DROP_COUNTED, None
        if sender in SEEING:
            return Verdict.FORWARD, Target.AGENT
        return Verdict.DROP, None  # ACK, keyframe request, chat: not before admission
    # Customer pages: chat only, the chat page's to the agent.
    if kind is not F.CHAT:
        return Verdict.REFUSE, None
    if sender is Sender.CHAT_PAGE and slot is SlotIs.OWN:
        return Verdict.FORWARD, Target.AGENT
    return Verdict.DROP, None


@pytest.mark.parametrize(("sender", "kind", "slot"), ALL)
def test_every_route_follows_the_rules(sender: Sender, kind: FrameType, slot: SlotIs) -> None:
    found = route(sender, kind, slot)
    assert (found.verdict, found.target) == _expected(sender, kind, slot)
    if found.verdict is Verdict.FORWARD:
        assert found.queue is not None, "a delivered frame has a queue class"
    else:
        assert found.target is None and found.queue is None


def test_only_the_controller_has_an_input_route_at_all() -> None:
    with_input = {key for key, r in ROUTES.items() if key[1] is F.INPUT and r.target is not None}
    assert with_input == {(Sender.VIEWER_CONTROLLING, F.INPUT, SlotIs.OWN)}
    # An observer's input is not even in the table: it has no route (capability by
    # construction), so nothing can be forwarded for it by a default.
    assert (Sender.VIEWER_WATCHING, F.INPUT, SlotIs.OWN) not in ROUTES
    assert route(Sender.VIEWER_WATCHING, F.INPUT, SlotIs.OWN) is NO_ROUTE


def test_chat_is_audited_exactly_where_a_person_writes_it() -> None:
    audited = {key for key, r in ROUTES.items() if r.audit_chat}
    assert audited == {
        (Sender.VIEWER_WATCHING, F.CHAT, SlotIs.OWN),
        (Sender.VIEWER_CONTROLLING, F.CHAT, SlotIs.OWN),
        (Sender.CHAT_PAGE, F.CHAT, SlotIs.OWN),
    }
    # The agent relays the customer's words: its copies are not audited again.
    assert not any(r.audit_chat for key, r in ROUTES.items() if key[0] is Sender.AGENT)


def test_acks_are_checked_against_what_was_sent() -> None:
    checked = {key for key, r in ROUTES.items() if r.within_sent}
    assert checked == {(s, F.ACK, SlotIs.OWN) for s in SEEING}


@pytest.mark.parametrize(("key", "found"), [(k, r) for k, r in ROUTES.items() if r.queue])
def test_the_queue_class_is_what_the_flow_policy_does(
    key: tuple[Sender, FrameType, SlotIs], found: Route
) -> None:
    """The table's queue class and ``flow.decide`` agree, for a full queue of each kind."""
    kind = key[1]
    limits = flow.FlowLimits(max_queued_frames=1, max_queued_bytes=10, max_queued_control=1)
    full = flow.decide(
        kind,
        5,
        queued_frames=1,
        queued_bytes=10,
        queued_control=1,
        awaiting_keyframe=False,
        limits=limits,
    )
    expected = {
        Queue.DELTA: {
            flow.Offer.FLUSH_DELTAS_AND_REQUEST_KEYFRAME,
            flow.Offer.DROP,  # a cursor is latest-wins: the next one replaces it
        },
        Queue.KEYFRAME: {flow.Offer.REPLACE_WITH_KEYFRAME},
        Queue.LATEST_WINS: {flow.Offer.REPLACE_PENDING},
        Queue.DROPPABLE: {flow.Offer.DROP},
        Queue.CONTROL: {flow.Offer.CLOSE},
    }
    assert found.queue is not None and full in expected[found.queue]


@pytest.mark.parametrize(
    ("slot", "own", "expected"),
    [
        (3, 3, SlotIs.OWN),
        (BROADCAST_SLOT, 3, SlotIs.BROADCAST),
        (CUSTOMER_SLOT, 3, SlotIs.CUSTOMER),
        (CUSTOMER_SLOT, CUSTOMER_SLOT, SlotIs.OWN),
        (4, 3, SlotIs.OTHER),
        (0, None, SlotIs.OTHER),  # the agent has no own slot to speak under
    ],
)
def test_slot_is(slot: int, own: int | None, expected: SlotIs) -> None:
    assert slot_is(slot, own) is expected
