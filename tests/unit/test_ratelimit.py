"""Per-address limiter, global alarm, and which address a proxied request counts against."""

from __future__ import annotations

import ipaddress

import pytest

from broker.auth.ratelimit import (
    MAX_FORWARDED_HOPS,
    Decision,
    GlobalRateAlarm,
    SlidingWindowLimiter,
    client_address,
)


def test_allows_limit_then_says_how_long_to_wait() -> None:
    limiter = SlidingWindowLimiter(limit=3, window=60)
    assert [limiter.check("a", t).allowed for t in (0, 10, 20)] == [True, True, True]
    assert limiter.check("a", 30) == Decision(False, 30.0)
    assert limiter.check("a", 59.5) == Decision(False, 0.5)
    assert limiter.check("a", 60) == Decision(True, 0.0)
    assert limiter.check("a", 61) == Decision(False, 9.0)


def test_denied_attempts_are_not_counted() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10)
    assert limiter.check("a", 0).allowed
    for t in range(1, 10):
        assert not limiter.check("a", t).allowed
    assert limiter.check("a", 10).allowed


def test_keys_are_independent() -> None:
    limiter = SlidingWindowLimiter(limit=1, window=10)
    assert limiter.check("a", 0).allowed
    assert limiter.check("b", 0).allowed
    assert not limiter.check("a", 1).allowed


def test_memory_is_bounded_and_the_least_recent_key_goes_first() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=100, max_keys=3)
    for key in ("a", "b", "c"):
        limiter.check(key, 0)
    limiter.check("a", 1)  # a is now the most recently hit
    limiter.check("d", 2)  # evicts b
    assert len(limiter) == 3
    assert not limiter.check("a", 3).allowed
    assert limiter.check("b", 3).allowed and limiter.check("b", 3).allowed  # counted afresh


def test_a_clock_stepping_back_stands_still() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=10)
    assert limiter.check("a", 100).allowed
    assert limiter.check("a", 50).allowed
    assert limiter.check("a", 40) == Decision(False, 10.0)
    assert limiter.check("a", 110).allowed


@pytest.mark.parametrize(("limit", "window", "max_keys"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_limiter_refuses_nonsense(limit: int, window: float, max_keys: int) -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(limit, window, max_keys)


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


def test_peek_and_hit_count_only_failures() -> None:
    limiter = SlidingWindowLimiter(limit=2, window=10)
    assert limiter.peek("a", 0) == Decision(True) and len(limiter) == 0
    limiter.hit("a", 1)
    assert limiter.peek("a", 2).allowed
    limiter.hit("a", 2)
    assert limiter.peek("a", 3) == Decision(False, 8.0)
    limiter.hit("a", 5)  # a failure while refused still counts: the oldest makes way
    assert limiter.peek("a", 11) == Decision(False, 1.0)  # without it, allowed at 11
    assert limiter.peek("a", 12).allowed
