"""Which asyncio event loop ``rsb serve`` runs on (setting ``event_loop``).

uvloop (libuv under asyncio's API) does the relay's socket work in C: in our benchmark runs
the broker at 200 live sessions used 7-19 % less CPU on it than on asyncio's loop (its p99
latency differed by less than the run-to-run spread; docs/benchmarks.md). It is the default
wherever it is installed (the ``server`` extra installs it on Linux and macOS); asyncio's own
loop remains for Windows and for anyone who asks for it. Nothing in the broker depends on
which one runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
EVENT_LOOPS: tuple[EventLoopChoice, ...] = ("auto", "uvloop", "asyncio")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class EventLoopUnavailable(RuntimeError):
    """``event_loop = "uvloop"`` was asked for on a machine without uvloop."""


def loop_factory(choice: EventLoopChoice) -> tuple[str, LoopFactory | None]:
    """The name of the loop to run and its factory for ``asyncio.Runner`` (None: asyncio's).

    Raises:
        EventLoopUnavailable: uvloop was required explicitly and cannot be imported.
    """
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise EventLoopUnavailable(
                "event_loop = uvloop, but uvloop is not installed "
                "(pip install uvloop, or set event_loop = auto)"
            ) from exc
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop
