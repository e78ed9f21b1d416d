"""The table of live handoff codes (broker/sessions/handoffs.py): single use, short-lived, one
per session, bounded, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.sessions.handoffs import Handoff, HandoffCodes, Miss

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)


def test_a_code_redeems_once() -> None:
    table = HandoffCodes(TTL)
    issued = table.issue("h1", "s1", "C-1", T0)
    assert issued == Handoff("h1", "s1", "C-1", T0, T0 + TTL)
    assert table.live_for("s1", T0) == issued
    assert table.take("h1", T0 + timedelta(minutes=1)) == issued
    # Spent: a second try finds nothing, and the session has no live code any more.
    assert table.take("h1", T0 + timedelta(minutes=1)) is Miss.UNKNOWN
    assert table.live_for("s1", T0) is None
    assert len(table) == 0


def test_an_expired_code_is_refused_and_spent() -> None:
    table = HandoffCodes(TTL)
    table.issue("h1", "s1", "C-1", T0)
    assert table.live_for("s1", T0 + TTL) is None
    assert table.take("h1", T0 + TTL) is Miss.EXPIRED  # valid until, not at, expiry
    assert table.take("h1", T0) is Miss.UNKNOWN  # even a clock stepping back finds nothing
    assert len(table) == 0


def test_a_new_code_withdraws_the_sessions_previous_one() -> None:
    table = HandoffCodes(TTL)
    table.issue("h1", "s1", "C-1", T0)
    other = table.issue("h9", "s2", "C-2", T0)
    table.issue("h2", "s1", "C-1", T0 + timedelta(minutes=1))
    assert table.take("h1", T0 + timedelta(minutes=2)) is Miss.UNKNOWN
    assert table.live_for("s1", T0).code_hash == "h2"  # type: ignore[union-attr]
    # Another session's code is untouched.
    assert table.take("h9", T0 + timedelta(minutes=2)) == other


def test_withdraw_and_sweep() -> None:
    table = HandoffCodes(TTL)
    table.issue("h1", "s1", "C-1", T0)
    table.issue("h2", "s2", "C-2", T0 + timedelta(minutes=5))
    assert table.withdraw("s1") is True
    assert table.withdraw("s1") is False
    assert not table.holds("h1")
    assert table.sweep(T0 + TTL) == 0  # h2 lives until T0 + 15 min
    assert table.sweep(T0 + TTL + timedelta(minutes=5)) == 1
    assert len(table) == 0


def test_a_taken_hash_cannot_be_issued_twice() -> None:
    table = HandoffCodes(TTL)
    table.issue("h1", "s1", "C-1", T0)
    with pytest.raises(ValueError, match="taken"):
        table.issue("h1", "s2", "C-2", T0)
    assert table.live_for("s2", T0) is None


def test_the_table_is_bounded() -> None:
    table = HandoffCodes(TTL, max_live=3)
    for n in range(5):
        table.issue(f"h{n}", f"s{n}", "C", T0 + timedelta(seconds=n))
    assert len(table) == 3
    # The codes closest to expiry went first.
    assert [table.holds(f"h{n}") for n in range(5)] == [False, False, True, True, True]
    assert table.live_for("s0", T0) is None


@pytest.mark.parametrize(("ttl", "max_live"), [(timedelta(0), 1), (TTL, 0)])
def test_bad_configuration(ttl: timedelta, max_live: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        HandoffCodes(ttl, max_live)
