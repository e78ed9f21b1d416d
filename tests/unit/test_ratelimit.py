"""Per-address limiter, global alarm, and which address a proxied request counts against."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.auth.ratelimit import (
    MAX_FORWARDED_HOPS,
    GlobalRateAlarm,
    Refused,
    Reservation,
    SlidingWindowLimiter,
    client_address,
)


def _taken(limiter: SlidingWindowLimiter, key: str, now: float) -> Reservation:
    """Reserve a unit that the test expects to get, and mark the attempt failed."""
    reservation = limiter.reserve(key, now)
    assert isinstance(reservation, Reservation), reservation
    limiter.settle(reservation)
    return reservation


def test_allows_limit_then_says_how_long_to_wait() -> None:
    limiter = SlidingWindowLimiter(limit=3, window=60)
    for t in (0, 10, 20):
        _taken(limiter, "a", t)
    assert limiter.reserve("a", 30) == Refused(30.0)
    assert limiter.reserve("a", 59.5) == Refused(0.5)
    _taken(limiter, "a", 60)
    assert limiter.reserve("a", 61) == Refused(9.0)


def test_refused_attempts_take_no_unit() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10)
    _taken(limiter, "a", 0)
    for t in range(1, 10):
        assert isinstance(limiter.reserve("a", t), Refused)
    _taken(limiter, "a", 10)


def test_a_reservation_counts_before_its_outcome_is_known() -> None:
    """The parallel-guessing fix: N reservations in the same instant get at most ``limit``."""
    limiter = SlidingWindowLimiter(limit=10, window=600)
    answers = [limiter.reserve("a", 0) for _ in range(500)]
    granted = [r for r in answers if isinstance(r, Reservation)]
    assert len(granted) == 10 and limiter.in_use("a", 0) == 10
    assert all(isinstance(r, Refused) for r in answers[10:])


def test_refund_gives_the_unit_back_so_only_failures_stay_counted() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=10)
    first = limiter.reserve("a", 0)
    second = limiter.reserve("a", 0)
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    assert isinstance(limiter.reserve("a", 1), Refused)
    limiter.refund(first)  # a correct password
    assert limiter.in_use("a", 1) == 1
    third = limiter.reserve("a", 1)
    assert isinstance(third, Reservation)
    limiter.settle(second)
    limiter.settle(third)
    assert limiter.reserve("a", 2) == Refused(8.0)  # second leaves at 10


def test_refund_is_idempotent_and_identity_based() -> None:
    limiter = SlidingWindowLimiter(limit=3, window=10)
    same_instant = [limiter.reserve("a", 5) for _ in range(2)]
    first = same_instant[0]
    assert isinstance(first, Reservation)
    limiter.refund(first)
    limiter.refund(first)
    assert limiter.in_use("a", 5) == 1, "a second refund must not return another's unit"


def test_in_flight_units_advise_a_short_wait() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=300, in_flight_retry=1.0)
    _taken(limiter, "a", 0)
    assert isinstance(limiter.reserve("a", 0), Reservation)  # still in flight
    assert limiter.reserve("a", 0) == Refused(1.0), "an in-flight unit may come back soon"
    assert limiter.reserve("a", 299.5) == Refused(0.5), "never longer than the window's own"


def test_refund_after_the_key_was_forgotten_does_nothing() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=100, max_keys=1)
    old = limiter.reserve("a", 0)
    assert isinstance(old, Reservation)
    _taken(limiter, "b", 1)  # evicts a
    _taken(limiter, "a", 2)  # a counted afresh
    limiter.refund(old)
    assert limiter.in_use("a", 2) == 1


def test_a_unit_neither_refunded_nor_settled_leaves_with_the_window() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10)
    assert isinstance(limiter.reserve("a", 0), Reservation)  # the attempt crashed
    assert isinstance(limiter.reserve("a", 9), Refused)
    assert isinstance(limiter.reserve("a", 10), Reservation)


def test_keys_are_independent() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10)
    _taken(limiter, "a", 0)
    _taken(limiter, "b", 0)
    assert isinstance(limiter.reserve("a", 1), Refused)


def test_memory_is_bounded_and_the_least_recent_key_goes_first() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=100, max_keys=3)
    for key in ("a", "b", "c"):
        _taken(limiter, key, 0)
    _taken(limiter, "a", 1)  # a is now the most recently used
    _taken(limiter, "d", 2)  # evicts b
    assert len(limiter) == 3
    assert isinstance(limiter.reserve("a", 3), Refused)
    assert limiter.in_use("b", 3) == 0  # counted afresh


def test_a_clock_stepping_back_stands_still() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=10)
    _taken(limiter, "a", 100)
    _taken(limiter, "a", 50)
    assert limiter.reserve("a", 40) == Refused(10.0)
    _taken(limiter, "a", 110)


@pytest.mark.parametrize(
    ("limit", "window", "max_keys", "in_flight_retry"),
    [(0, 1, 1, 1), (1, 0, 1, 1), (1, 1, 0, 1), (1, 1, 1, 0)],
)
def test_limiter_refuses_nonsense(
    limit: int, window: float, max_keys: int, in_flight_retry: float
) -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(limit, window, max_keys, in_flight_retry)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["reserve", "refund", "settle"]),
            st.floats(min_value=0, max_value=5, allow_nan=False),
            st.integers(min_value=0, max_value=50),
        ),
        max_size=200,
    )
)
def test_never_more_than_the_budget_in_flight_or_failed(
    steps: list[tuple[str, float, int]],
) -> None:
    """Whatever the interleaving, the units held within any window never exceed the limit."""
    limit, window = 3, 10.0
    limiter = SlidingWindowLimiter(limit=limit, window=window)
    now = 0.0
    held: list[Reservation] = []  # granted and not refunded
    for action, step, pick in steps:
        now += step
        if action == "reserve":
            answer = limiter.reserve("k", now)
            if isinstance(answer, Reservation):
                held.append(answer)
            else:
                assert answer.retry_after > 0
        elif held:
            chosen = held[pick % len(held)]
            if action == "refund":
                limiter.refund(chosen)
                held.remove(chosen)
            else:
                limiter.settle(chosen)
        live = [r for r in held if r.at > now - window]
        assert len(live) <= limit
        assert limiter.in_use("k", now) == len(live)


def test_alarm_fires_once_per_crossing() -> None:
    alarm = GlobalRateAlarm(threshold=3, window=10)
    assert [alarm.record(t) for t in (0, 1, 2, 3, 4)] == [False, False, True, False, False]
    assert alarm.raised
    assert alarm.record(20) is False and not alarm.raised  # rate fell below the threshold
    assert [alarm.record(t) for t in (21, 22)] == [False, True]


def test_alarm_at_threshold_one_fires_after_each_quiet_spell() -> None:
    alarm = GlobalRateAlarm(threshold=1, window=5)
    assert [alarm.record(t) for t in (0, 1, 10, 11)] == [True, False, True, False]


def test_alarm_tolerates_a_clock_stepping_back() -> None:
    alarm = GlobalRateAlarm(threshold=2, window=5)
    assert [alarm.record(t) for t in (100, 50)] == [False, True]


@pytest.mark.parametrize(("threshold", "window"), [(0, 1), (1, 0)])
def test_alarm_refuses_nonsense(threshold: int, window: float) -> None:
    with pytest.raises(ValueError):
        GlobalRateAlarm(threshold, window)


PROXIES = frozenset({ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")})


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # untrusted peer: header ignored
        ("10.0.0.2", None, "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "1.1.1.1, 198.51.100.1", "198.51.100.1"),  # left part is client-written
        ("10.0.0.2", "198.51.100.1, 10.0.0.3", "198.51.100.1"),  # skip the inner proxy
        ("10.0.0.2", "garbage, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "198.51.100.1, garbage", "10.0.0.2"),  # invalid in the trusted part
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1:4711", "10.0.0.2"),
        ("10.0.0.2", "10.0.0.3, 10.0.0.4", "10.0.0.2"),  # only proxies listed
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),  # dual-stack socket
        ("::ffff:203.0.113.5", None, "203.0.113.5"),
        ("fd00::1", "2001:db8::1", "2001:db8::1"),
        ("10.0.0.2", " 2001:DB8:0::1 ", "2001:db8::1"),
        ("unix-socket", "198.51.100.1", "unix-socket"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_client_address_reads_only_the_last_hops() -> None:
    padding = ", ".join(["10.0.0.9"] * (MAX_FORWARDED_HOPS + 5))
    assert client_address("10.0.0.2", f"198.51.100.1, {padding}", PROXIES) == "10.0.0.2"
    huge = "x" * 100_000 + ", 198.51.100.1"
    assert client_address("10.0.0.2", huge, PROXIES) == "198.51.100.1"


def test_client_address_accepts_settings_tuple() -> None:
    assert client_address("10.0.0.2", "198.51.100.1", tuple(PROXIES)) == "198.51.100.1"
