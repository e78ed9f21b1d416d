"""The session tells an indicator-showing prompt who is watching, and a 4105 close is final.

Driven with the fake broker of tests/unit/test_agent_session.py: the activity must follow the
agent's own consent record (admit, control, the customer's stop commands, a viewer leaving).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent_client.prompt import Activity, ActivityDisplay, Command, TerminalPrompt, Watcher
from agent_client.session import ExitStatus
from agent_client.texts import TEXTS
from agent_client.transport import TransportClosed
from rsb_protocol.close_codes import CloseCode
from rsb_protocol.messages import Leave, Permission
from tests.unit.test_agent_session import (
    WAIT,
    Rig,
    ScriptedPrompt,
    Viewer,
    running_session,
)


class WatchingPrompt(ScriptedPrompt):
    """The scripted prompt, plus the indicator's side of the interface."""

    def __init__(self) -> None:
        super().__init__()
        self.activities: list[Activity] = []

    def show_activity(self, activity: Activity) -> None:
        self.activities.append(activity)


@pytest.fixture
async def watched() -> AsyncIterator[tuple[Rig, WatchingPrompt]]:
    prompt = WatchingPrompt()
    async with running_session(prompt) as rig:
        yield rig, prompt


def test_only_prompts_with_an_indicator_are_told() -> None:
    assert isinstance(WatchingPrompt(), ActivityDisplay)
    assert not isinstance(ScriptedPrompt(), ActivityDisplay)
    assert not isinstance(TerminalPrompt(), ActivityDisplay)


async def test_the_activity_follows_admission_control_and_the_stop_commands(
    watched: tuple[Rig, WatchingPrompt],
) -> None:
    rig, prompt = watched
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    ana = Watcher("Alice Martin", "L2")
    assert prompt.activities[-1] == Activity((ana,))
    link.push(alice.request(Permission.CONTROL))
    await rig.prompt.answer(True)
    await rig.eventually(lambda: prompt.activities[-1] == Activity((ana,), ana))
    assert prompt.on_command is not None
    prompt.on_command(Command.REVOKE_CONTROL)
    assert prompt.activities[-1] == Activity((ana,))
    prompt.on_command(Command.PAUSE)
    assert prompt.activities[-1] == Activity((ana,), paused=True)
    prompt.on_command(Command.REVOKE_VIEW)
    assert prompt.activities[-1] == Activity(paused=True)
    # Nothing is repeated: one report per change.
    assert all(a != b for a, b in zip(prompt.activities, prompt.activities[1:], strict=False))


async def test_a_viewer_who_leaves_is_no_longer_shown(watched: tuple[Rig, WatchingPrompt]) -> None:
    rig, prompt = watched
    link = await rig.connect()
    alice = Viewer(3, "alice")
    await rig.admit(link, alice)
    assert prompt.activities[-1].viewers
    link.push(Leave(3, "alice", "left"))
    await rig.eventually(lambda: prompt.activities[-1] == Activity())


async def test_an_outdated_agent_is_told_to_download_again_and_stops(
    watched: tuple[Rig, WatchingPrompt],
) -> None:
    rig, prompt = watched
    link = await rig.connect()
    link.push(TransportClosed(CloseCode.AGENT_OUTDATED))
    assert await asyncio.wait_for(rig.task, WAIT) is ExitStatus.CONNECTION_FAILED  # type: ignore[arg-type]
    assert rig.broker.count == 1  # no retry
    assert TEXTS["en"]["n_outdated"] in prompt.notices
