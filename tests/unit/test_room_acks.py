"""The room's ACK rule without sockets: what reaches the agent is what was sent, paced by the
fastest admitted viewer (``Room.note_sent``, ``Room.accept_ack``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from broker.audit.log import Actor
from broker.relay.room import Close, Room

T0 = datetime(2026, 12, 3, tzinfo=UTC)


async def _no_audit(actor: Actor, action: str, details: Mapping[str, Any]) -> None:
    """The rule writes nothing."""


def _room() -> Room:
    return Room(
        "s-1",
        "C-000001",
        organisation="Acme",
        resume_window=timedelta(minutes=2),
        clock=lambda: T0,
        audit=_no_audit,
    )


def test_an_ack_counts_only_for_what_was_sent() -> None:
    room = _room()
    assert not room.accept_ack(1, 1), "nothing was sent yet"
    room.note_sent((1, 5))
    assert not room.accept_ack(1, 6), "beyond the newest update relayed"
    assert not room.accept_ack(2, 1), "an epoch the agent has not used"
    assert not room.accept_ack(1, 0), "no update has seq 0"
    assert room.accept_ack(1, 3)
    assert not room.accept_ack(1, 3) and not room.accept_ack(1, 2), "not newer"
    assert room.accept_ack(1, 5)
    room.note_sent((2, 1))  # a new epoch starts counting at 1 again
    assert not room.accept_ack(1, 5), "the old epoch is over"
    assert room.accept_ack(2, 1)


events = st.lists(
    st.one_of(
        st.tuples(st.just("sent"), st.integers(1, 3), st.integers(1, 50)),
        st.tuples(st.just("ack"), st.integers(0, 3), st.integers(0, 60)),
    ),
    max_size=80,
)


@given(events)
def test_forwarded_acks_never_exceed_what_was_sent_and_only_move_forward(
    steps: list[tuple[str, int, int]],
) -> None:
    room = _room()
    forwarded: list[tuple[int, int]] = []
    for kind, epoch, seq in steps:
        if kind == "sent":
            room.note_sent((epoch, seq))
            continue
        sent = room.sent_position
        if room.accept_ack(epoch, seq):
            assert (epoch, seq) != (-1, 0)
            assert epoch == sent[0] and 0 < seq <= sent[1]
            if forwarded and forwarded[-1][0] == epoch:
                assert seq > forwarded[-1][1], "within an epoch, each forwarded ACK is newer"
            forwarded.append((epoch, seq))


def test_a_new_agent_connection_counts_afresh() -> None:
    room = _room()
    room.note_sent((3, 9))
    assert room.accept_ack(3, 9)

    class _Conn:
        kind, participant, slot = "agent", "agent", 0

        def send(self, message: object) -> None:
            pass

    effects = room.attach_agent(_Conn())  # type: ignore[arg-type]
    assert not [e for e in effects if isinstance(e, Close)], "it replaced nobody"
    assert room.sent_position == (-1, 0) and room.max_acked == (-1, 0)
    assert not room.accept_ack(3, 9), "nothing sent on this connection yet"
