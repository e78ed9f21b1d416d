"""The sliding-window maximum behind ``rsb_event_loop_lag_max_seconds``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.loop_lag import LagWindow


def test_the_maximum_holds_for_one_window_then_goes() -> None:
    window = LagWindow(10)
    assert window.observe(0, 0.5) == 0.5
    assert window.observe(1, 0.1) == 0.5
    assert window.observe(9.9, 0.2) == 0.5
    assert window.observe(10, 0.05) == 0.2, "the 0.5 s stall left the window"
    assert window.observe(20, 0.0) == 0.0


def test_a_larger_lag_replaces_the_maximum_at_once() -> None:
    window = LagWindow(60)
    window.observe(0, 0.1)
    assert window.observe(1, 3.0) == 3.0


def test_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError):
        LagWindow(0)


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=3, allow_nan=False),
            st.floats(min_value=0, max_value=10, allow_nan=False),
        ),
        min_size=1,
        max_size=100,
    )
)
def test_matches_the_naive_maximum(steps: list[tuple[float, float]]) -> None:
    window = LagWindow(5)
    seen: list[tuple[float, float]] = []
    at = 0.0
    for step, lag in steps:
        at += step
        seen.append((at, lag))
        expected = max(value for when, value in seen if when > at - 5)
        assert window.observe(at, lag) == expected
