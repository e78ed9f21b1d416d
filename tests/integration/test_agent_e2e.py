"""The must-show of issue 3 with every part real: broker, `rsb-agent` process, Xvfb, xterm.

Each test runs the broker in its own event loop on 127.0.0.1 with a real SQLite file, a fresh
Xvfb with an xterm running `cat > FILE` and an orange window that records clicks, and the real
`rsb-agent join CODE` process capturing and controlling that display. The agent talks to the
broker through `TcpProxy`, which records what the agent sent and can cut the connection. The
test plays the customer on the agent's terminal (stdin/stdout) and the engineers with the
`rsb_viewer` client library.

Proof always comes from outside the code under test: mss screenshots of the display, the bytes
`cat` wrote, the clicks the recorder saw, the bytes that crossed the proxy, the audit API.

Screen equality bound: PSNR >= 30 dB between the viewer's picture and an mss screenshot (the
JPEG q75 keyframe of this screen measured 43.9 dB; the lossless idle refresh then makes it
exact, which the first test also asserts). `rsb view --snapshot` writes the first keyframe, so
it is held to the PSNR bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.frames import Opcode

from broker.relay.handlers import HUB_KEY
from broker.types import Role
from rsb_codec.wire import Update
from rsb_protocol.framing import Envelope, FrameType, peek_route
from rsb_viewer.client import ViewerClient, ViewerClosed
from rsb_viewer.session import ViewerSession
from tests.conftest import REPO, Broker
from tests.integration.agent_harness import (
    AgentProcess,
    TcpProxy,
    client_frames,
    data_frames,
    eventually,
    eventually_async,
    grab_screen,
    psnr,
    start_click_recorder,
)
from tests.integration.conftest import WAIT_UNIT, XtermWindow, XvfbServer, start_xterm
from tests.integration.test_api_input import CASE

pytestmark = pytest.mark.display

PSNR_BOUND = 30.0
INSIDE_XTERM = (120, 80)
CLICK_BOX = (820, 420, 160, 120)  # x, y, width, height of the click recorder
CLICK_AT = (900, 480)
STAFF = {
    "rita": (Role.RSE, "Rita Reyes"),  # L2: may take control
    "dana": (Role.DESK, "Dana Desk"),  # L1 desk: observe only (role table)
    "evan": (Role.ENGINEERING, "Evan Eng"),
    "sam": (Role.SECURITY, "Sam Sec"),
}


class RecordingSession(ViewerSession):
    """A viewer session that also keeps every decrypted update (the screen's plaintext)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plaintexts: list[bytes] = []

    def _on_update(self, envelope: Envelope, update: Update) -> list[str | bytes]:
        self.plaintexts.extend(region.data for region in update.regions)
        return super()._on_update(envelope, update)


class RawSession(ViewerSession):
    """A viewer session that also keeps every message exactly as the broker relayed it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: list[str | bytes] = []

    @property
    def frames(self) -> list[bytes]:
        return [m for m in self.messages if isinstance(m, bytes)]

    def receive(self, data: str | bytes) -> list[str | bytes]:
        self.messages.append(data)
        return super().receive(data)

    def between_states(self, first: str, then: str) -> list[str | bytes]:
        """The messages after the first `state` of phase `first` up to the next of `then`."""
        phases = [
            (i, json.loads(m)["phase"])
            for i, m in enumerate(self.messages)
            if isinstance(m, str) and json.loads(m)["type"] == "state"
        ]
        start = next(i for i, phase in phases if phase == first)
        end = next(i for i, phase in phases if i > start and phase == then)
        return self.messages[start + 1 : end]


@dataclass
class Stage:
    """Broker, display and session of one test."""

    broker: Broker
    xvfb: XvfbServer
    proxy: TcpProxy
    tokens: dict[str, str]
    session_id: str
    code: str
    case_number: str
    typed: Path
    clicks: Path
    tmp: Path
    viewers: list[ViewerClient]

    @property
    def broker_url(self) -> str:
        return f"http://127.0.0.1:{self.broker.client.port}"

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    async def viewer(self, name: str, *, session: ViewerSession | None = None) -> ViewerClient:
        client = ViewerClient(self.broker_url, self.tokens[name], self.session_id)
        if session is not None:
            client.session = session
        self.viewers.append(client)
        await client.connect()
        return client

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    async def audit(self) -> list[dict[str, Any]]:
        body = await self.broker.call(
            "GET",
            f"/api/v1/audit?session={self.session_id}",
            status=200,
            headers=self.headers("sam"),
        )
        events: list[dict[str, Any]] = body["events"]
        return events

    def agent_peer_offer(self, frame: bytes) -> None:
        """Hand a frame straight to the agent's socket, past every check of the relay.

        This is what a compromised broker could do; the agent must hold on its own.
        """
        room = self.broker.client.app[HUB_KEY].room(self.session_id)
        assert room is not None and room.agent is not None
        room.agent.offer(frame, FrameType.INPUT)

    def typed_text(self) -> str:
        return self.typed.read_text(encoding="utf-8") if self.typed.exists() else ""

    async def xdotool(self, *args: str) -> str:
        return await asyncio.to_thread(self.xvfb.run, "xdotool", *args)


@pytest.fixture
def desktop(xvfb: XvfbServer, tmp_path: Path) -> Iterator[tuple[XtermWindow, Path]]:
    """A coloured root window and an xterm at +0+0 with a line of text, running `cat > FILE`."""
    xvfb.run("xsetroot", "-solid", "#3a6ea5")
    typed = tmp_path / "typed.txt"
    window = start_xterm(
        xvfb,
        ["sh", "-c", f"stty -ixon; echo 'RSB test desktop: case screen'; exec cat > {typed}"],
        log_dir=tmp_path,
    )
    yield window, typed


@pytest.fixture
async def stage(
    broker: Broker, xvfb: XvfbServer, desktop: tuple[XtermWindow, Path], tmp_path: Path
) -> AsyncIterator[Stage]:
    tokens = {}
    for name, (role, display) in STAFF.items():
        tokens[name] = (await broker.staff(name, role, display))["Authorization"][7:]
    rita = {"Authorization": f"Bearer {tokens['rita']}"}
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=rita, json=CASE)
    session = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=rita
    )
    proxy = TcpProxy(broker.client.port or 0)
    await proxy.start()
    clicks = tmp_path / "clicks.txt"
    recorder = await start_click_recorder(xvfb, CLICK_BOX, clicks)
    stage = Stage(
        broker,
        xvfb,
        proxy,
        tokens,
        session["id"],
        session["code"],
        case["number"],
        desktop[1],
        clicks,
        tmp_path,
        [],
    )
    try:
        yield stage
    finally:
        for client in stage.viewers:
            await client.close()
        await proxy.close()
        recorder.kill()
        await recorder.wait()


@pytest.fixture
async def agent(stage: Stage) -> AsyncIterator[AgentProcess]:
    """`rsb-agent join CODE` on the test display, through the proxy, with the terminal UI."""
    process = await AgentProcess.start(
        ["join", stage.code, "--broker", stage.agent_url, "--display", stage.xvfb.display]
        + ["--ui", "terminal"],
        env=stage.xvfb.env,
    )
    try:
        await process.wait_for("Waiting for the engineer")
        yield process
    finally:
        code = await process.stop()
        assert code == 0, process.output


async def admit(agent: AgentProcess, viewer: ViewerClient, name: str) -> list[str]:
    """The customer says yes to `name` seeing the screen; returns the question shown."""
    question = await agent.answer("y")
    assert f"Engineer:  {name}" in "\n".join(question), question
    await agent.wait_for(f"Allowed: {name} can now see your screen")
    await viewer.wait_first_keyframe(15 * WAIT_UNIT)
    return question


async def grant_control(agent: AgentProcess, viewer: ViewerClient, name: str) -> None:
    await viewer.request_control("to fix the printer settings")
    question = await agent.answer("y")
    assert "CONTROL your mouse and keyboard" in question[0], question
    assert f"Engineer:  {name}" in "\n".join(question)
    await viewer.wait_for(
        lambda c: c.state is not None and c.state.controller_slot == c.slot, 10 * WAIT_UNIT
    )


async def screen_matches(stage: Stage, viewer: ViewerClient, *, exact: bool = False) -> float:
    """Wait until the viewer's picture is within PSNR_BOUND of the display (or identical, with
    `exact`); return the PSNR."""
    bound = math.inf if exact else PSNR_BOUND

    async def probe() -> float | None:
        canvas = viewer.canvas
        if canvas is None:
            return None
        value = psnr(canvas, await asyncio.to_thread(grab_screen, stage.xvfb.display))
        return value if value >= bound else None

    return await eventually_async(probe, timeout=15, what="the viewer's screen to match")


async def typed(stage: Stage, expected: str) -> None:
    try:
        await eventually(
            lambda: stage.typed_text() == expected,
            timeout=10,
            what=f"the xterm to get {expected!r}",
        )
    except TimeoutError:
        assert stage.typed_text() == expected


def distinctive_runs(plaintexts: list[bytes], size: int = 32) -> list[bytes]:
    """Runs of `size` bytes from each plaintext with at least 20 distinct byte values.

    A run of zeros (WebP of a flat area, say) occurs in any SQLite file; a run that looks
    random occurs only where the plaintext itself went.
    """
    runs = [
        run
        for plain in plaintexts
        for start in range(0, len(plain) - size + 1, size)
        if len(set(run := plain[start : start + size])) >= 20
    ]
    return runs[:: max(len(runs) // 200, 1)]  # a few hundred are plenty


async def pointer_at(stage: Stage, where: tuple[int, int]) -> None:
    """Wait until the X server reports the pointer at `where` (xdotool, not agent code)."""

    async def probe() -> bool:
        fields = dict(f.split(":") for f in (await stage.xdotool("getmouselocation")).split())
        return (int(fields["x"]), int(fields["y"])) == where

    await eventually_async(probe, timeout=10, what=f"the pointer at {where}")


def dropped_by_broker(events: list[dict[str, Any]], actor: str) -> int:
    return sum(
        e["details"]["count"]
        for e in events
        if e["action"] == "relay.input_dropped" and e["actor"] == actor
    )


# --- consent, then the screen ---------------------------------------------------------------


async def test_nothing_leaves_before_consent_then_the_viewer_sees_the_display(
    stage: Stage, agent: AgentProcess
) -> None:
    recorder = RecordingSession(stage.session_id)
    rita = await stage.viewer("rita", session=recorder)
    question = await agent.next_question()
    text = "\n".join(question)
    assert "SEE your screen (view only, no control)" in text
    assert "Engineer:  Rita Reyes (L2, remote support engineer)" in text
    assert f"Case:      {stage.case_number}" in text
    await rita.wait_for(lambda c: c.session.agent_key is not None, 5 * WAIT_UNIT)
    words = " ".join(rita.readback.words)
    assert f"Read-back: {words}" in text, "customer and engineer read the same words"

    # Before the answer, the agent has shown the question with the engineer's key in hand, yet
    # all that crossed to the broker is hello and its public keys: no frame, no key wrap.
    (before,) = stage.proxy.websockets()
    sent = data_frames(client_frames(bytes(before.sent)))
    assert [f.opcode for f in sent] == [Opcode.TEXT] * 3
    types = [json.loads(bytes(f.data))["type"] for f in sent]
    assert types == ["hello", "public_key", "public_key"]
    assert rita.session.frames_dropped == 0 and rita.session.epoch == 0

    await agent.type("y")
    await agent.wait_for("Allowed: Rita Reyes can now see your screen")
    first = await rita.wait_first_keyframe(15 * WAIT_UNIT)
    shot = await asyncio.to_thread(grab_screen, stage.xvfb.display)
    assert first.shape == shot.shape == (800, 1280, 4)
    keyframe_psnr = psnr(first, shot)
    assert keyframe_psnr >= PSNR_BOUND, keyframe_psnr
    await screen_matches(stage, rita, exact=True)  # the lossless refresh of a still screen

    # The broker relayed and recorded only ciphertext: no 32-byte run of any decrypted screen
    # region is in what the agent sent (unmasked, as the broker read it) or in the database.
    relayed = b"".join(f.data for f in client_frames(bytes(before.sent)))
    stored = b"".join(p.read_bytes() for p in stage.tmp.glob("rsb.db*") if p.is_file())
    probes = distinctive_runs(recorder.plaintexts)
    assert len(probes) >= 10, "the decrypted screen yields enough distinctive runs to look for"
    assert not [probe for probe in probes if probe in relayed or probe in stored]

    # `rsb view --snapshot` as an engineer would run it, in its own process.
    token_file = stage.tmp / "evan.token"
    token_file.write_text(stage.tokens["evan"])
    token_file.chmod(0o600)
    snapshot = stage.tmp / "snap.png"
    view = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker.cli",
        "view",
        stage.session_id,
        "--broker",
        stage.broker_url,
        "--token-file",
        str(token_file),
        "--snapshot",
        str(snapshot),
        "--timeout",
        str(30 * WAIT_UNIT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
    )
    question = await agent.answer("y")
    assert "Engineer:  Evan Eng (L3" in "\n".join(question)
    out, _ = await asyncio.wait_for(view.communicate(), 40 * WAIT_UNIT)
    assert view.returncode == 0, out.decode()
    assert "Read-back words: " in out.decode()
    with Image.open(snapshot) as image:
        picture = np.asarray(image.convert("RGB"))
    screen = (await asyncio.to_thread(grab_screen, stage.xvfb.display))[..., 2::-1]
    assert psnr(picture, screen) >= PSNR_BOUND


# --- control ----------------------------------------------------------------------------------


async def test_granted_control_types_and_clicks_and_revoke_stops_it_at_once(
    stage: Stage, agent: AgentProcess
) -> None:
    rita = await stage.viewer("rita")
    await admit(agent, rita, "Rita Reyes")
    # Input before control is granted goes nowhere.
    await rita.send_input({"type": "type_text", "text": "too early\n"})
    await grant_control(agent, rita, "Rita Reyes")
    await agent.wait_for("Allowed: Rita Reyes now controls your mouse and keyboard")

    await rita.send_input({"type": "pointer_move", "x": INSIDE_XTERM[0], "y": INSIDE_XTERM[1]})
    await rita.send_input({"type": "type_text", "text": "ticket ok: café\n"})
    await typed(stage, "ticket ok: café\n")

    await rita.send_input({"type": "pointer_move", "x": CLICK_AT[0], "y": CLICK_AT[1]})
    await rita.send_input({"type": "pointer_button", "button": 1, "pressed": True})
    await rita.send_input({"type": "pointer_button", "button": 1, "pressed": False})
    await eventually(
        lambda: (
            stage.clicks.exists() and stage.clicks.read_text() == f"1 {CLICK_AT[0]} {CLICK_AT[1]}\n"
        ),
        timeout=10,
        what="the click recorder to see one left click",
    )
    await pointer_at(stage, CLICK_AT)
    await rita.send_input({"type": "pointer_move", "x": INSIDE_XTERM[0], "y": INSIDE_XTERM[1]})
    await pointer_at(stage, INSIDE_XTERM)  # keys go to the window under the pointer

    # The customer presses r: the broker stops relaying and the agent stops injecting.
    epoch = rita.session.epoch
    await agent.type("r")
    await agent.wait_for("Rita Reyes no longer has control")
    # Losing control starts a new epoch; Rita seals under it, so only consent can stop her.
    await rita.wait_for(lambda c: c.session.epoch > epoch, 10 * WAIT_UNIT)
    await rita.wait_for(
        lambda c: c.state is not None and c.state.controller_slot is None, 10 * WAIT_UNIT
    )
    await rita.send_input({"type": "type_text", "text": "via broker after revoke\n"})
    # Past the broker, straight to the agent, sealed with Rita's own current key.
    stage.agent_peer_offer(rita.session.seal_input({"type": "type_text", "text": "direct\n"}))
    # Control again, asked again: what is typed now lands after anything typed before, so if
    # the agent had injected either frame above, it would show up ahead of this line.
    await grant_control(agent, rita, "Rita Reyes")
    await rita.send_input({"type": "type_text", "text": "granted again\n"})
    await typed(stage, "ticket ok: café\ngranted again\n")
    events = await stage.audit()
    actions = {e["action"] for e in events}
    assert {"session.control_granted", "session.control_revoked"} <= actions
    assert dropped_by_broker(events, "rita") >= 1


async def test_an_observers_input_is_dropped_by_the_broker_and_by_the_agent(
    stage: Stage, agent: AgentProcess
) -> None:
    rita = await stage.viewer("rita")
    await admit(agent, rita, "Rita Reyes")
    await grant_control(agent, rita, "Rita Reyes")
    dana = await stage.viewer("dana")
    await admit(agent, dana, "Dana Desk")
    assert dana.slot != rita.slot
    await rita.send_input({"type": "pointer_move", "x": INSIDE_XTERM[0], "y": INSIDE_XTERM[1]})

    # Through the broker: dropped there, and audited against Dana.
    await dana.send_input({"type": "type_text", "text": "dana via broker\n"})
    events = await eventually_async(
        lambda: _dropped_events(stage, "dana"), timeout=10, what="the drop to be audited"
    )
    assert events[0]["actor_role"] == "desk"

    # Past the broker: Dana's frame under her own slot and key (she was admitted to view, so
    # she holds a pairwise key) is refused for lack of control consent ...
    sealed = dana.session.seal_input({"type": "type_text", "text": "dana direct\n"})
    stage.agent_peer_offer(sealed)
    # ... and re-addressed to Rita's slot it fails authentication (the header is bound in).
    envelope = Envelope.parse(
        dana.session.seal_input({"type": "type_text", "text": "dana as rita\n"}), 1 << 20
    )
    assert rita.slot is not None
    stage.agent_peer_offer(dataclasses.replace(envelope, slot=rita.slot).serialize())
    # Rita's input travels the same socket after those frames, so it is injected after them.
    await rita.send_input({"type": "type_text", "text": "only rita\n"})
    await typed(stage, "only rita\n")


async def _dropped_events(stage: Stage, actor: str) -> list[dict[str, Any]] | None:
    events = [
        e
        for e in await stage.audit()
        if e["action"] == "relay.input_dropped" and e["actor"] == actor
    ]
    return events or None


async def test_an_engineer_who_left_cannot_read_the_next_epoch(
    stage: Stage, agent: AgentProcess
) -> None:
    relayed = RawSession(stage.session_id)
    rita = await stage.viewer("rita", session=relayed)
    await admit(agent, rita, "Rita Reyes")
    evan = await stage.viewer("evan")
    await admit(agent, evan, "Evan Eng")
    left_at = evan.session.epoch
    assert left_at == rita.session.epoch
    await evan.close()
    # The agent starts a new epoch wrapped to Rita alone; the screen changes under it.
    await rita.wait_for(lambda c: c.session.epoch > left_at, 10 * WAIT_UNIT)
    seen = len(relayed.frames)
    await stage.xdotool("mousemove", str(INSIDE_XTERM[0]), str(INSIDE_XTERM[1]))
    await stage.xdotool("type", "after evan left")
    await screen_matches(stage, rita)
    later = [f for f in relayed.frames[seen:] if Envelope.parse(f, 1 << 24).epoch > left_at]
    screens = (FrameType.SCREEN_UPDATE, FrameType.KEYFRAME)
    assert any(peek_route(f)[0] in screens for f in later)
    # Evan's keys, handed every frame the broker relayed to Rita, open none of them.
    painted = evan.session.updates_applied
    for frame in later:
        evan.session.receive(frame)
    assert evan.session.updates_applied == painted and evan.session.epoch == left_at
    assert evan.session.frames_dropped >= len([f for f in later if peek_route(f)[1] != rita.slot])


async def test_pause_stops_the_stream_until_the_customer_resumes(
    stage: Stage, agent: AgentProcess
) -> None:
    relayed = RawSession(stage.session_id)
    rita = await stage.viewer("rita", session=relayed)
    await admit(agent, rita, "Rita Reyes")
    await agent.type("p")
    await agent.wait_for("Paused: nothing is shared")
    await rita.wait_for(lambda c: c.state is not None and c.state.phase == "paused", 10 * WAIT_UNIT)
    # The screen changes while paused: the viewer must not see it ...
    await stage.xdotool("mousemove", str(INSIDE_XTERM[0]), str(INSIDE_XTERM[1]))
    await stage.xdotool("type", "typed while paused")
    await agent.type("p")
    await agent.wait_for("Resumed.")
    # ... until the customer resumes; then a whole frame brings it up to date. The broker's
    # `observing` state comes first (had the typing not reached the display yet, the picture
    # could match before it, with nothing to compare).
    await rita.wait_for(
        lambda c: c.state is not None and c.state.phase == "observing", 10 * WAIT_UNIT
    )
    await screen_matches(stage, rita)
    during = relayed.between_states("paused", "observing")
    assert not [m for m in during if isinstance(m, bytes)], "no frame relayed while paused"
    assert agent.count("Allow? Type y or n") == 1


# --- a dropped connection ---------------------------------------------------------------------


async def test_a_cut_connection_reconnects_and_the_stream_resumes_without_a_new_prompt(
    stage: Stage, agent: AgentProcess
) -> None:
    rita = await stage.viewer("rita")
    await admit(agent, rita, "Rita Reyes")
    await screen_matches(stage, rita)
    epoch = rita.session.epoch
    keyframes = rita.session.keyframes_applied

    stage.proxy.cut()
    await agent.wait_for("Connection lost")
    await agent.wait_for("Reconnected; your earlier answers still apply.")
    assert len(stage.proxy.websockets()) == 2
    await rita.wait_for(
        lambda c: c.session.epoch > epoch and c.session.keyframes_applied > keyframes,
        15 * WAIT_UNIT,
    )
    # The screen changes after the reconnect, and the viewer follows it.
    await stage.xdotool("mousemove", str(INSIDE_XTERM[0]), str(INSIDE_XTERM[1]))
    await stage.xdotool("type", "back after the cut")
    await screen_matches(stage, rita)
    assert agent.count("Allow? Type y or n") == 1, agent.output


async def test_a_viewer_that_drops_and_resumes_sees_the_screen_again_without_a_new_prompt(
    stage: Stage, agent: AgentProcess
) -> None:
    rita = await stage.viewer("rita")
    await admit(agent, rita, "Rita Reyes")
    await screen_matches(stage, rita)
    ws = rita._ws
    assert ws is not None
    ws.transport.abort()  # the console's network drops: no close frame
    await rita.wait_for(lambda c: c.closed, 10 * WAIT_UNIT)

    async def recorded(action: str) -> bool | None:
        return any(e["action"] == action for e in await stage.audit()) or None

    await eventually_async(
        lambda: recorded("session.participant_disconnected"), timeout=10, what="the drop"
    )
    # The console resumes in the same slot with the same key.
    session = ViewerSession(stage.session_id)
    session.own = rita.session.own
    again = await stage.viewer("rita", session=session)
    await again.wait_first_keyframe(15 * WAIT_UNIT)
    assert again.slot == rita.slot
    await stage.xdotool("mousemove", str(INSIDE_XTERM[0]), str(INSIDE_XTERM[1]))
    await stage.xdotool("type", "back after the drop")
    await screen_matches(stage, again)
    assert await recorded("session.participant_resumed")
    assert agent.count("Allow? Type y or n") == 1, agent.output


# --- attach, as the customer page tells the customer -----------------------------------------


async def test_attach_takes_the_token_from_the_environment_only(broker: Broker) -> None:
    rita = await broker.staff("rita", Role.RSE, "Rita Reyes")
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=rita, json=CASE)
    session = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=rita
    )
    # What the customer page does with the code, then shows as a command to copy.
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    url = f"http://127.0.0.1:{broker.client.port}"
    agent = await AgentProcess.start(
        ["attach", "--broker", url, "--source", "test-pattern", "--ui", "terminal"],
        env={**os.environ, "RSB_AGENT_TOKEN": joined["agent_token"]},
    )
    viewer = ViewerClient(url, rita["Authorization"][7:], session["id"])
    try:
        await agent.wait_for("Waiting for the engineer")
        assert f"remote support for case {case['number']}" in agent.output
        cmdline = Path(f"/proc/{agent.proc.pid}/cmdline").read_bytes()
        assert joined["agent_token"].encode() not in cmdline
        await viewer.connect()
        question = await agent.answer("y")
        assert "Engineer:  Rita Reyes (L2" in "\n".join(question)
        picture = await viewer.wait_first_keyframe(15 * WAIT_UNIT)
        assert picture.shape == (800, 1280, 4)
    finally:
        await viewer.close()
        assert await agent.stop() == 0, agent.output


# --- the Tk dialog ----------------------------------------------------------------------------


async def test_the_tk_dialog_asks_and_its_buttons_answer_and_end(
    broker: Broker, xvfb: XvfbServer
) -> None:
    rita = await broker.staff("rita", Role.RSE, "Rita Reyes")
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=rita, json=CASE)
    session = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=rita
    )
    url = f"http://127.0.0.1:{broker.client.port}"
    agent = await AgentProcess.start(
        ["join", session["code"], "--broker", url, "--source", "test-pattern", "--ui", "tk"],
        env=xvfb.env,
    )
    viewer = ViewerClient(url, rita["Authorization"][7:], session["id"])
    try:
        window = await eventually_async(
            lambda: _xdotool(xvfb, "search", "--name", "^Remote support$"),
            timeout=15,
            what="the consent window",
        )
        window = window.split()[0]
        idle_height = await _window_height(xvfb, window)
        await viewer.connect()
        # The question's lines make the window taller (no window manager holds its size).
        await eventually_async(
            lambda: _taller(xvfb, window, idle_height), timeout=15, what="the question to show"
        )
        # Keyboard focus follows the pointer; Tab reaches the first enabled button, Allow.
        await _xdotool(xvfb, "mousemove", "--window", window, "10", "10")
        await _xdotool(xvfb, "key", "Tab", "space")
        await viewer.wait_first_keyframe(15 * WAIT_UNIT)
        # The question is gone (the window shrinks back) and Allow and Deny are disabled
        # again, so four Tabs go on to Pause, Take back control, Stop all viewing, End.
        await eventually_async(
            lambda: _height_is(xvfb, window, idle_height), timeout=15, what="the question to go"
        )
        await _xdotool(xvfb, "key", "Tab", "Tab", "Tab", "Tab", "space")
        with pytest.raises(ViewerClosed) as closed:
            await viewer.wait_for(lambda c: False, 10 * WAIT_UNIT)
        assert closed.value.code == 4103 and "ended by the customer" in closed.value.reason
        assert await asyncio.wait_for(agent.proc.wait(), 10 * WAIT_UNIT) == 0
    finally:
        await viewer.close()
        await agent.stop()


async def _xdotool(xvfb: XvfbServer, *args: str) -> str | None:
    done = await asyncio.create_subprocess_exec(
        "xdotool", *args, env=xvfb.env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await done.communicate()
    return out.decode() if done.returncode == 0 and out.strip() else None


async def _window_height(xvfb: XvfbServer, window: str) -> int:
    out = await _xdotool(xvfb, "getwindowgeometry", window)
    assert out is not None
    return int(out.split("Geometry:")[1].split("x")[1])


async def _taller(xvfb: XvfbServer, window: str, than: int) -> bool:
    return await _window_height(xvfb, window) > than


async def _height_is(xvfb: XvfbServer, window: str, height: int) -> bool:
    return await _window_height(xvfb, window) == height
