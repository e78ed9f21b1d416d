"""What the always-on-top indicator says, from the agent's own record of who was let in."""

from __future__ import annotations

from agent_client.indicator import indicator_lines
from agent_client.prompt import Activity, Watcher

ANA = Watcher("Ana Ruiz", "L2")
DAN = Watcher("Dan Desk", "L1")


def test_nobody_let_in_means_no_indicator() -> None:
    assert indicator_lines(Activity(), "en") == []
    assert indicator_lines(Activity(paused=True), "es") == []


def test_viewers_are_named_with_their_level() -> None:
    assert indicator_lines(Activity((ANA, DAN)), "en") == [
        "Being watched by Ana Ruiz (L2), Dan Desk (L1)"
    ]
    assert indicator_lines(Activity((Watcher("Ana Ruiz", None),)), "es") == [
        "Viendo su pantalla: Ana Ruiz"
    ]


def test_control_and_pause_are_said_first_and_last() -> None:
    assert indicator_lines(Activity((ANA,), ANA, paused=True), "en") == [
        "Ana Ruiz is controlling your computer",
        "Being watched by Ana Ruiz (L2)",
        "Paused: nothing is shared right now",
    ]
    assert indicator_lines(Activity((ANA,), ANA), "es")[0] == (
        "Ana Ruiz está controlando su ordenador"
    )
