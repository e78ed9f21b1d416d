"""What ends a live connection early (``broker/auth/revocation.py``), without sockets: which
credentials a revocation covers, what the store comparison finds stale, and the expiry queue
the hub's ticker pops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.auth.keys import LEEWAY
from broker.auth.revocation import Credential, ExpiryQueue, Revocation, stale

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
RITA = Credential("kid-a", T0 + timedelta(hours=1), "rita")
AGENT = Credential("kid-a", T0 + timedelta(hours=12))
DANA = Credential("kid-b", T0 + timedelta(hours=1), "dana")


def test_the_deadline_is_when_the_token_stops_verifying() -> None:
    assert RITA.deadline() == RITA.expires_at + LEEWAY
    assert RITA.deadline(timedelta(0)) == RITA.expires_at


def test_a_disabled_user_covers_his_staff_tokens_only() -> None:
    revocation = Revocation("user_disabled", user="rita")
    assert revocation.matches(RITA)
    assert not revocation.matches(DANA)
    assert not revocation.matches(AGENT), "session tokens name no user"
    assert not revocation.matches(None)


def test_a_revoked_key_covers_every_token_it_signed() -> None:
    revocation = Revocation("key_revoked", kid="kid-a")
    assert revocation.matches(RITA) and revocation.matches(AGENT)
    assert not revocation.matches(DANA)
    assert not revocation.matches(None)


@pytest.mark.parametrize(
    ("reason", "user", "kid"),
    [
        ("user_disabled", None, None),
        ("user_disabled", "rita", "kid-a"),
        ("key_revoked", None, None),
        ("key_revoked", "rita", "kid-a"),
        ("key_revoked", "rita", None),
    ],
)
def test_a_revocation_names_exactly_what_it_withdraws(
    reason: str, user: str | None, kid: str | None
) -> None:
    with pytest.raises(ValueError):
        Revocation(reason, user=user, kid=kid)  # type: ignore[arg-type]


def test_stale_compares_a_credential_with_the_store() -> None:
    kids, enabled = {"kid-a", "kid-b"}, {"rita", "dana"}
    assert stale(RITA, kids, enabled) is None
    assert stale(AGENT, kids, set()) is None, "a session token is judged by its key alone"
    assert stale(RITA, kids, {"dana"}) == "user_disabled"
    assert stale(RITA, {"kid-b"}, enabled) == "key_revoked"
    assert stale(AGENT, {"kid-b"}, enabled) == "key_revoked"
    assert stale(RITA, {"kid-b"}, set()) == "key_revoked", "the key is checked first"
    assert stale(None, set(), set()) is None


def test_the_queue_pops_due_items_in_deadline_order() -> None:
    queue: ExpiryQueue[str] = ExpiryQueue()
    queue.add("late", T0 + timedelta(seconds=30))
    queue.add("early", T0 + timedelta(seconds=10))
    queue.add("middle", T0 + timedelta(seconds=20))
    assert queue.pop_due(T0) == []
    assert queue.next_deadline() == (T0 + timedelta(seconds=10)).timestamp()
    assert queue.pop_due(T0 + timedelta(seconds=20)) == ["early", "middle"], "due at the deadline"
    assert len(queue) == 1 and "late" in queue and "early" not in queue
    assert queue.pop_due(T0 + timedelta(days=1)) == ["late"]
    assert queue.pop_due(T0 + timedelta(days=2)) == [] and len(queue) == 0
    assert queue.next_deadline() is None


def test_discarded_items_never_come_due_and_adding_again_moves_the_deadline() -> None:
    queue: ExpiryQueue[str] = ExpiryQueue()
    queue.add("gone", T0)
    queue.add("moved", T0)
    queue.discard("gone")
    queue.discard("never added")
    queue.add("moved", T0 + timedelta(seconds=5))
    assert queue.pop_due(T0) == []
    assert queue.next_deadline() == (T0 + timedelta(seconds=5)).timestamp()
    assert queue.pop_due(T0 + timedelta(seconds=5)) == ["moved"]


def test_connections_that_come_and_go_leave_the_heap_bounded() -> None:
    """Lazy deletion must not keep one heap entry per connection ever made (an agent that
    reconnects all day with a 12-hour token)."""
    queue: ExpiryQueue[int] = ExpiryQueue()
    queue.add(-1, T0 + timedelta(hours=12))  # one that stays
    for n in range(10_000):
        queue.add(n, T0 + timedelta(hours=12))
        queue.discard(n)
    assert len(queue) == 1
    assert len(queue._heap) <= 2 * len(queue) + ExpiryQueue._COMPACT_SLACK + 1
    assert queue.pop_due(T0 + timedelta(hours=12)) == [-1]


_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "discard", "pop"]),
        st.integers(0, 7),  # item
        st.integers(0, 100),  # seconds after T0
    ),
    max_size=80,
)


@given(_ops)
def test_the_queue_behaves_like_a_dict_of_deadlines(ops: list[tuple[str, int, int]]) -> None:
    queue: ExpiryQueue[int] = ExpiryQueue()
    model: dict[int, datetime] = {}
    for op, item, seconds in ops:
        at = T0 + timedelta(seconds=seconds)
        if op == "add":
            queue.add(item, at)
            model[item] = at
        elif op == "discard":
            queue.discard(item)
            model.pop(item, None)
        else:
            due = sorted((d, i) for i, d in model.items() if d <= at)
            popped = queue.pop_due(at)
            assert sorted(popped) == sorted(i for _, i in due)
            assert [model[i] for i in popped] == sorted(model[i] for i in popped)
            for i in popped:
                del model[i]
        assert len(queue) == len(model)
        expected = min(model.values()).timestamp() if model else None
        assert queue.next_deadline() == expected
