"""The whole story in Debian's Chromium, with a real agent process on a real X display.

An engineer signs in to the console, opens a case and a session; the customer, in a second
browser context, types the code on the customer page and sees who is calling; the agent starts
with the token the page gave, and the test answers its consent prompt. The console then shows
the customer's X screen (its pixels are compared with the colour blocks drawn there), takes
control with the customer's consent and types into an xterm on that screen (the xterm's file is
checked). The customer revokes control on the customer page, and typing in the console has no
effect any more. Finally a security reviewer finds exactly these events on the audit page.

A second, quicker test puts the console in front of a scripted agent (``tests/relay_peers.py``)
for what the story does not reach: queue order and live updates, a refused control request,
pause and resume, chat both ways, escalation and untrusted text in the queue. Two more run the
real agent again: a browser without X25519 (P-256 fallback), and a dropped connection that the
console resumes by itself.
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, Page, WebSocket, expect

from agent_client.encoder import Encoder
from agent_client.inject import InputEvent
from broker.audit.log import row_to_json
from broker.store.records import AuditQuery
from broker.types import Role
from rsb_codec.wire import serialize_update
from rsb_protocol import messages as msg
from rsb_protocol.e2e import PairwiseChannel, PublicKey, Side
from rsb_protocol.framing import FrameType, peek_position
from rsb_protocol.readback import readback
from tests.conftest import PASSWORD
from tests.e2e.conftest_pages import (
    CASE,
    WAIT_MS,
    WAIT_S,
    Opened,
    Site,
    TabFactory,
    chromium,
    dark_pixels,
    eventually,
    eventually_async,
    screenshot,
    site,
    tabs,
)
from tests.e2e.story_fixtures import (
    BLOCKS,
    ROOT_COLOUR,
    AgentProcess,
    StoryDisplay,
    agents,
    block_centre,
    story_display,
)
from tests.integration.conftest import xvfb
from tests.relay_peers import ScriptedAgent

__all__ = ["agents", "chromium", "site", "story_display", "tabs", "xvfb"]  # fixtures

pytestmark = pytest.mark.browser

ENGINEER = ("rita", "Rita Reyes")
REVIEWER = ("sam", "Sam Quiroga")
COMMAND = re.compile(r"^RSB_AGENT_TOKEN=(\S+) rsb-agent attach --broker (\S+)$")
TEXT_STRIP = (24, 3, 140, 11)
"""The xterm's first text line, right of where the cursor starts: blank until something is typed."""
LINE_END = (140, 3, 16, 11)
"""Where the last letters of the typed line are drawn (7 pixels per character)."""
TOLERANCE = 24
"""Per-channel difference allowed between a canvas pixel and the colour drawn on X (JPEG)."""

INPUT_FRAME_TYPE = 0x10
CHAT_FRAME_TYPE = 0x11

# The story's audit trail for the session, in order, as the security page lists it.
STORY_EVENTS = [
    "session.created",  # the engineer opened the session (the case was opened before)
    "session.customer_joined",  # the customer page spent the code
    "session.participant_joined",  # the engineer joined; the agent is asked for view consent
    "session.agent_connected",
    "session.consent_granted",  # view
    "session.consent_requested",  # control
    "session.control_granted",
    "session.control_revoked",  # by the customer, on the customer page
    "session.chat",  # metadata only: the text is end-to-end encrypted
    "session.ended",
]


class SentFrames:
    """What the console sent on its WebSocket: binary frame types (the header's byte 1), and
    the control messages as text."""

    def __init__(self) -> None:
        self.types: list[int] = []
        self.texts: list[str] = []
        self.received: list[int] = []
        self.urls: list[str] = []

    def watch(self, ws: WebSocket) -> None:
        self.urls.append(ws.url)
        ws.on("framesent", self._sent)
        ws.on("framereceived", self._received)

    def _received(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes) and len(payload) >= 2:
            self.received.append(payload[1])

    def _sent(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes) and len(payload) >= 2:
            self.types.append(payload[1])
        elif isinstance(payload, str):
            self.texts.append(payload)

    def messages(self, kind: type[msg.Message]) -> list[Any]:
        parsed = [msg.parse_message(text, 1 << 16) for text in self.texts]
        return [m for m in parsed if isinstance(m, kind)]

    def count(self, frame_type: int) -> int:
        return self.types.count(frame_type)


async def _console_page(chromium: Browser, frames: SentFrames, problems: list[str]) -> Page:
    context = await chromium.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("websocket", frames.watch)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    return page


async def _sign_in(console: Page, site: Site) -> None:
    await console.goto(site.url("/console"))
    await expect(console.locator("body")).to_have_attribute("data-ready", "true")
    await console.fill("#username", ENGINEER[0])
    await console.fill("#password", PASSWORD)
    await console.click("#login-submit")
    await expect(console.locator("#whoami-text")).to_have_text("Rita Reyes (L2)")


async def _canvas_pixel(page: Page, x: int, y: int) -> tuple[int, int, int]:
    data = await page.evaluate(
        "([x, y]) => Array.from("
        "document.getElementById('screen').getContext('2d').getImageData(x, y, 1, 1).data)",
        [x, y],
    )
    return data[0], data[1], data[2]


def _close(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return all(abs(p - q) <= TOLERANCE for p, q in zip(a, b, strict=True))


async def _pattern_seen(page: Page) -> dict[tuple[int, int], tuple[int, int, int]]:
    """The canvas pixels where the pattern should be."""
    points = [block_centre(col, row) for col, row, _ in BLOCKS] + [(1200, 760), (700, 700)]
    return {point: await _canvas_pixel(page, *point) for point in points}


def _pattern_matches(seen: dict[tuple[int, int], tuple[int, int, int]]) -> bool:
    expected = {block_centre(col, row): rgb for col, row, rgb in BLOCKS}
    expected[(1200, 760)] = ROOT_COLOUR
    expected[(700, 700)] = ROOT_COLOUR
    return all(_close(seen[point], rgb) for point, rgb in expected.items())


async def _wait_for_pattern(page: Page, agent: AgentProcess, frames: SentFrames) -> None:
    """Wait until the canvas shows the colour blocks and the root colour drawn on X."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not _pattern_matches(seen := await _pattern_seen(page)):
        if asyncio.get_running_loop().time() > deadline:
            status = await page.text_content("#s-status")
            details = await page.get_attribute("#s-readout", "title")
            raise AssertionError(
                f"the canvas never showed the pattern: {seen}; status {status!r}; "
                f"{details}; binary frame types on the socket: {sorted(set(frames.received))} "
                f"({len(frames.received)} frames); agent:\n{agent.output}"
            )
        await asyncio.sleep(0.05)


async def _page_point(page: Page, x: int, y: int) -> tuple[float, float]:
    """Where screen pixel (x, y) is on the page: the canvas is scaled with object-fit contain."""
    box = await page.locator("#screen").bounding_box()
    assert box is not None
    width, height = 1280, 800
    scale = min(box["width"] / width, box["height"] / height)
    left = box["x"] + (box["width"] - width * scale) / 2
    top = box["y"] + (box["height"] - height * scale) / 2
    return left + (x + 0.5) * scale, top + (y + 0.5) * scale


async def _audit_actions(site: Site, session_id: str) -> list[str]:
    rows = await site.services.audit.search(AuditQuery(session_id=session_id, limit=1000))
    return [row_to_json(row)["action"] for row in rows]


async def test_the_whole_story(
    site: Site,
    tabs: TabFactory,
    chromium: Browser,
    story_display: StoryDisplay,
    agents: list[AgentProcess],
) -> None:
    await site.broker.add_user(ENGINEER[0], Role.RSE, ENGINEER[1])
    await site.broker.add_user(REVIEWER[0], Role.SECURITY, REVIEWER[1])
    frames = SentFrames()
    problems: list[str] = []
    console = await _console_page(chromium, frames, problems)

    # 1. The engineer signs in, opens a case and a session on it.
    await _sign_in(console, site)
    form = console.locator("#case-form")
    for name in ("customer_name", "company", "contact", "product", "serial_number"):
        await form.locator(f"[name={name}]").fill(CASE[name])
    await form.locator("[name=severity]").select_option("2")
    await console.click("#case-submit")
    await expect(console.locator("#created")).to_be_visible()
    code = (await console.text_content("#created-code") or "").replace(" ", "")
    case_number = await console.text_content("#created-case") or ""
    assert re.fullmatch(r"\d{10}", code), code
    # The queue shows the new session without a reload.
    row = console.locator(f"#sessions-body tr[data-case='{case_number}']")
    await expect(row).to_contain_text("waiting for the customer")

    # 2. The customer types the code and sees who is calling, for which case.
    customer = (await tabs()).page
    await customer.goto(site.url("/"))
    await expect(customer.locator("body")).to_have_attribute("data-ready", "true")
    await customer.fill("#code", f"{code[:3]} {code[3:6]} {code[6:]}")
    await customer.click("#join-submit")
    await expect(customer.locator("#engineer")).to_contain_text("Rita Reyes")
    await expect(customer.locator("#case-number")).to_have_text(case_number)
    command = await customer.text_content("#agent-cmd") or ""
    match = COMMAND.match(command)
    assert match is not None, command
    assert match.group(2) == site.origin
    session_id = await row.get_attribute("data-session")
    assert session_id is not None

    # 3. The engineer joins; the agent starts and asks the customer, who says yes.
    await console.click("#created-join")
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "waiting")
    agent = AgentProcess.attach(story_display.x, broker=match.group(2), token=match.group(1))
    agents.append(agent)
    seen = await agent.expect("SEE your screen")
    seen = await agent.expect("Engineer:  Rita Reyes (L2", after=seen - 1)
    words_at = await agent.expect("Read-back:", after=seen)
    agent_words = agent.lines[words_at - 1].split("Read-back:")[1].split("(")[0].split()
    await expect(console.locator("#rb-words")).to_have_text(" ".join(agent_words))
    await expect(customer.locator("#readback-words")).to_have_attribute(
        "data-words", " ".join(agent_words)
    )
    seen = await agent.expect("Allow?", after=words_at)
    agent.answer("y")

    # 4. The console draws the customer's screen: the colour blocks and the root colour.
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "observing")
    await expect(console.locator("#stage-note")).to_be_hidden()
    await _wait_for_pattern(console, agent, frames)
    await expect(console.locator("#s-readout")).to_have_text(re.compile(r"^\d+ fps · \d+ ms$"))
    await expect(console.locator("#people li[data-slot='0']")).to_contain_text("customer's agent")

    # 5. Control: requested, the customer agrees, keys typed on the canvas reach the xterm.
    before_control = frames.count(INPUT_FRAME_TYPE)
    await console.locator("#screen").click(position={"x": 5, "y": 5}, force=True)
    await console.keyboard.type("not yet")
    await console.click("#control-btn")
    await expect(console.locator("#s-control")).to_have_attribute("data-control", "requested")
    seen = await agent.expect("CONTROL your mouse and keyboard", after=seen)
    seen = await agent.expect("Allow?", after=seen)
    agent.answer("y")
    await expect(console.locator("#s-control")).to_have_attribute("data-control", "controlling")
    assert frames.count(INPUT_FRAME_TYPE) == before_control == 0
    await console.mouse.click(*await _page_point(console, 100, 60))  # in the xterm at +0+0
    # The click went through the canvas scaling to exactly that screen pixel, and still does
    # once the window is smaller and the picture scaled down further.
    await eventually(lambda: story_display.pointer() == (100, 60), "the pointer at 100,60")
    wide = await console.locator("#screen").bounding_box()
    await console.set_viewport_size({"width": 1000, "height": 700})
    narrow = await console.locator("#screen").bounding_box()
    assert wide is not None and narrow is not None and narrow["width"] < wide["width"]
    x, y = await _page_point(console, 210, 130)
    await console.mouse.move(x, y)  # a move, not a click: xterm would take two as a double click
    await eventually(lambda: story_display.pointer() == (210, 130), "the pointer at 210,130")
    await console.set_viewport_size({"width": 1440, "height": 900})
    x, y = await _page_point(console, 210, 130)
    assert await dark_pixels(console, TEXT_STRIP) == 0
    # Special keys and modifiers too: Control+U erases the line in the tty, Backspace a letter.
    await console.keyboard.type("garbage")
    await console.keyboard.press("Control+u")
    await console.keyboard.type("hello from the consolx")
    await console.keyboard.press("Backspace")
    await console.keyboard.type("e")
    await console.keyboard.press("Enter")
    await eventually(
        lambda: "hello from the console\n" in story_display.typed_text(), "typed line in the xterm"
    )
    assert story_display.typed_text() == "hello from the console\n"
    # The echo comes back as screen updates: the typed text is drawn on the console's canvas.
    await eventually_async(lambda: dark_pixels(console, LINE_END), "the echo on the canvas")
    await screenshot(console, "console.png")

    # 6. The customer revokes control on their page: typing has no effect any more.
    await customer.click("#revoke-control-btn")
    await expect(console.locator("#s-control")).to_have_attribute("data-control", "none")
    sent_inputs = frames.count(INPUT_FRAME_TYPE)
    await console.mouse.click(*await _page_point(console, 300, 200))
    await console.mouse.click(x, y)
    await console.keyboard.type("after revoke")
    await console.keyboard.press("Enter")
    # A chat message goes out on the same socket after those keys: once it is seen, any INPUT
    # frame the keys could have caused would have been seen before it.
    chats = frames.count(CHAT_FRAME_TYPE)
    await console.fill("#chat-input", "I no longer control your screen")
    await console.click("#chat-send")
    await expect(console.locator("#chat-log")).to_contain_text("I no longer control your screen")
    await eventually(lambda: frames.count(CHAT_FRAME_TYPE) > chats, "the chat frame sent")
    assert frames.count(INPUT_FRAME_TYPE) == sent_inputs
    assert "after revoke" not in story_display.typed_text()
    assert story_display.pointer() == (210, 130)

    # The staff token went only in the subprotocol: not in the socket's URL, not in storage.
    assert frames.urls == [site.url(f"/ws/viewer/{session_id}").replace("http", "ws", 1)]
    stored = await console.evaluate(
        "localStorage.length + sessionStorage.length + document.cookie.length"
    )
    assert stored == 0

    # 7. The engineer ends the session; the agent leaves with status 0.
    await console.click("#end-btn")
    await expect(console.locator("#end-btn")).to_have_text("Click again to end")
    await console.click("#end-btn")
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "ended")
    await eventually(lambda: agent.proc.poll() is not None, "the agent to exit")
    assert agent.proc.returncode == 0, agent.output

    # 8. The security reviewer sees exactly those events on the session's timeline.
    actions = await _audit_actions(site, session_id)
    assert actions == STORY_EVENTS, actions
    review = (await tabs()).page
    await review.goto(site.url("/audit"))
    await review.fill("#username", REVIEWER[0])
    await review.fill("#password", PASSWORD)
    await review.click("#login-submit")
    await review.fill("#t-session", session_id)
    await review.click("#timeline-btn")
    timeline = review.locator("#timeline li")
    await expect(timeline).to_have_count(len(STORY_EVENTS))
    shown = [await item.get_attribute("data-action") for item in await timeline.all()]
    assert shown == STORY_EVENTS
    assert problems == []


async def _open_case(site: Site, staff: dict[str, str], severity: int, **fields: str) -> Opened:
    """A case with a session on it, opened through the API."""
    body = {**CASE, **fields, "severity": severity}
    case = await site.broker.call("POST", "/api/v1/cases", status=201, headers=staff, json=body)
    session = await site.broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=staff
    )
    return Opened(case["number"], session["id"], session["code"], staff)


def _keyframe(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """An update payload as the agent's encoder makes it: one solid-colour JPEG keyframe."""
    frame = np.empty((height, width, 4), np.uint8)
    frame[...] = (rgb[2], rgb[1], rgb[0], 255)  # BGRA
    update = Encoder().encode(frame, force_keyframe=True)
    assert update is not None
    return serialize_update(update)


async def test_console_queue_consent_refusal_pause_chat_and_escalation(
    site: Site, chromium: Browser
) -> None:
    """The console against a scripted agent: what the story does not reach, checked quickly."""
    await site.broker.add_user(ENGINEER[0], Role.RSE, ENGINEER[1])
    staff = await site.broker.login(ENGINEER[0])
    frames = SentFrames()
    problems: list[str] = []
    console = await _console_page(chromium, frames, problems)
    hostile = '<img src=x id="pwned">'
    normal = await _open_case(site, staff, 3, customer_name=hostile)
    urgent = await _open_case(site, staff, 1)

    # The queue: most severe first, names shown as text, a new session appears without reload.
    await _sign_in(console, site)
    rows = console.locator("#sessions-body tr")
    await expect(rows).to_have_count(2)
    order = [await r.get_attribute("data-session") for r in await rows.all()]
    assert order == [urgent.session_id, normal.session_id]
    await expect(rows.nth(1)).to_contain_text(hostile)
    await expect(console.locator("#pwned")).to_have_count(0)
    await console.evaluate("window.sameDocument = true")
    middle = await _open_case(site, staff, 2)
    await expect(rows).to_have_count(3)
    assert await console.evaluate("window.sameDocument === true")
    order = [await r.get_attribute("data-session") for r in await rows.all()]
    assert order == [urgent.session_id, middle.session_id, normal.session_id]
    await screenshot(console, "console-queue.png")

    # The customer joins the urgent session; a scripted agent connects; the engineer joins.
    session_id = urgent.session_id
    await rows.nth(0).locator("button").click()
    await expect(console.locator("#s-case")).to_have_text(urgent.case_number)
    await expect(console.locator("#s-case-info")).to_have_text(
        f"severity 1 · {CASE['customer_name']}, {CASE['company']} · "
        f"{CASE['product']} {CASE['serial_number']}"
    )
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "waiting")
    joined = await site.broker.call("POST", "/api/v1/join", status=200, json={"code": urgent.code})
    token = joined["agent_token"]
    agent = await ScriptedAgent.join(site.broker.client, token, session_id)
    view = await agent.peer.wait(lambda: agent.peer.of(msg.ConsentRequest))
    assert view[0].permission is msg.Permission.VIEW
    assert view[0].engineer_name == ENGINEER[1]
    slot = view[0].slot
    await agent.peer.wait(lambda: agent.viewer_key(slot))
    await agent.grant(view[0])
    await agent.admit([slot])
    colour = (0x10, 0x90, 0x60)
    lone = await agent.screen(_keyframe(320, 200, colour))
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "observing")
    await expect(console.locator("#screen")).to_have_attribute("width", "320")
    assert _close(await _canvas_pixel(console, 160, 100), colour)

    # Delayed ACK (docs/protocol.md): a lone update is acknowledged after a moment, a burst
    # cumulatively, about every second update, the last one included.
    def acked() -> list[tuple[int, int]]:
        return [peek_position(frame) for frame in agent.peer.frames(FrameType.ACK)]

    assert await agent.peer.wait(acked) == [peek_position(lone)]
    burst = [await agent.screen(_keyframe(320, 200, colour)) for _ in range(10)]
    last = peek_position(burst[-1])
    await agent.peer.wait(lambda: last in acked())
    seqs = [seq for _, seq in acked()[1:]]
    assert seqs == sorted(set(seqs)) and len(seqs) < len(burst), seqs
    await expect(console.locator("#people li[data-slot='0']")).to_contain_text("customer's agent")
    await expect(console.locator(f"#people li[data-slot='{slot}']")).to_contain_text("you")

    # Keys on the canvas without control go nowhere.
    await console.locator("#screen").click()
    await console.keyboard.type("no control")
    # The customer refuses control: the console is back to view only and says so.
    await console.click("#control-btn")
    await expect(console.locator("#s-control")).to_have_attribute("data-control", "requested")
    asked = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission == "control"]
    )
    await agent.peer.send(
        msg.ConsentRefuse(asked[0].request_id, slot, msg.Permission.CONTROL, "not now")
    )
    await expect(console.locator("#s-control")).to_have_attribute("data-control", "none")
    await expect(console.locator("#notices")).to_contain_text("consent_refused")
    await expect(console.locator("#control-btn")).to_be_enabled()

    # Pause and resume by the customer are shown at once.
    await agent.peer.send(msg.Pause(msg.Role.AGENT, "phone call"))
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "paused")
    await expect(console.locator("#stage-note")).to_have_text("The customer paused sharing.")
    await agent.peer.send(msg.Resume(msg.Role.AGENT))
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "observing")

    # Chat both ways, end-to-end, sealed with the pairwise keys of our slot.
    assert agent.sender is not None
    viewer_key = agent.viewer_key(slot)
    assert viewer_key is not None
    channel = PairwiseChannel(
        session_id,
        agent.keys,
        PublicKey.from_announce(viewer_key),
        slot,
        Side.AGENT,
        epoch=agent.sender.epoch,
    )
    await agent.peer.ws.send_bytes(channel.seal(FrameType.CHAT, b"Hola, ya lo veo"))
    await expect(console.locator("#chat-log")).to_contain_text("Hola, ya lo veo")
    await console.fill("#chat-input", "Gracias, un momento")
    await console.click("#chat-send")
    chat = await agent.peer.wait(lambda: agent.peer.frames(FrameType.CHAT))
    assert channel.open(chat[0])[1] == b"Gracias, un momento"
    assert agent.peer.frames(FrameType.INPUT) == []
    assert frames.count(INPUT_FRAME_TYPE) == 0

    # Escalation to L3 with a reason, recorded on the session.
    await console.select_option("#invite-target", "level:L3")
    await console.fill("#invite-reason", "firmware fault needs design engineering")
    await console.click("#invite-btn")
    await expect(console.locator("#invite-result")).to_contain_text("Invited any L3 engineer")
    found = await site.broker.call(
        "GET", f"/api/v1/sessions/{session_id}", status=200, headers=staff
    )
    assert [(i["level"], i["reason"]) for i in found["invitations"]] == [
        ("L3", "firmware fault needs design engineering")
    ]

    # Ending from the console tells the agent.
    await console.click("#end-btn")
    await expect(console.locator("#end-btn")).to_have_text("Click again to end")
    await console.click("#end-btn")
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "ended")
    await agent.peer.wait(lambda: [m for m in agent.peer.of(msg.State) if m.phase == "ended"])
    assert problems == []


# Chromium has X25519; a browser without it must fall back to P-256 (docs/protocol.md).
_WITHOUT_X25519 = """
(() => {
  const generate = SubtleCrypto.prototype.generateKey;
  SubtleCrypto.prototype.generateKey = function (algorithm, ...rest) {
    if ((algorithm?.name ?? algorithm) === "X25519") {
      return Promise.reject(new DOMException("X25519 is not supported", "NotSupportedError"));
    }
    return generate.call(this, algorithm, ...rest);
  };
})();
"""


async def test_console_falls_back_to_p256_with_a_real_agent(
    site: Site, chromium: Browser, story_display: StoryDisplay, agents: list[AgentProcess]
) -> None:
    """A browser without X25519 offers only P-256; the agent's P-256 pair serves it."""
    await site.broker.add_user(ENGINEER[0], Role.RSE, ENGINEER[1])
    staff = await site.broker.login(ENGINEER[0])
    opened = await _open_case(site, staff, 2)
    joined = await site.broker.call("POST", "/api/v1/join", status=200, json={"code": opened.code})
    frames = SentFrames()
    problems: list[str] = []
    console = await _console_page(chromium, frames, problems)
    await console.add_init_script(_WITHOUT_X25519)
    await _sign_in(console, site)
    await console.locator(f"#sessions-body tr[data-session='{opened.session_id}'] button").click()
    agent = AgentProcess.attach(story_display.x, broker=site.origin, token=joined["agent_token"])
    agents.append(agent)
    words_at = await agent.expect("Read-back:")
    agent_words = agent.lines[words_at - 1].split("Read-back:")[1].split("(")[0].split()
    await agent.expect("Allow?", after=words_at)
    agent.answer("y")

    await _wait_for_pattern(console, agent, frames)
    await expect(console.locator("#rb-words")).to_have_text(" ".join(agent_words))
    (hello,) = frames.messages(msg.Hello)
    assert hello.algorithms == (msg.KeyAlgorithm.P256,)
    (announced,) = frames.messages(msg.PublicKeyAnnounce)
    assert announced.algorithm is msg.KeyAlgorithm.P256
    assert problems == []


async def test_console_resumes_after_the_network_drops(
    site: Site, chromium: Browser, story_display: StoryDisplay, agents: list[AgentProcess]
) -> None:
    """A console whose connection dies reconnects by itself within the resume window: it keeps
    its slot, its key pair (same read-back words) and the customer's consent (no new question)."""
    await site.broker.add_user(ENGINEER[0], Role.RSE, ENGINEER[1])
    staff = await site.broker.login(ENGINEER[0])
    opened = await _open_case(site, staff, 2)
    joined = await site.broker.call("POST", "/api/v1/join", status=200, json={"code": opened.code})
    frames = SentFrames()
    problems: list[str] = []
    console = await _console_page(chromium, frames, problems)
    await _sign_in(console, site)
    await console.locator(f"#sessions-body tr[data-session='{opened.session_id}'] button").click()
    agent = AgentProcess.attach(story_display.x, broker=site.origin, token=joined["agent_token"])
    agents.append(agent)
    asked = await agent.expect("Allow?")
    agent.answer("y")
    await _wait_for_pattern(console, agent, frames)
    words = await console.text_content("#rb-words")
    room = site.hub.room(opened.session_id)
    assert room is not None
    (peer,) = room.viewers.values()

    # The TCP connection dies under both ends, with no closing handshake.
    peer.ws.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
    await expect(console.locator("#notices")).to_contain_text("reconnecting")
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "observing")
    again = room.viewers[peer.slot]
    assert again is not peer
    await expect(console.locator("#rb-words")).to_have_text(words or "")
    await expect(console.locator("#stage-note")).to_be_hidden()
    hellos = frames.messages(msg.Hello)
    keys = frames.messages(msg.PublicKeyAnnounce)
    assert len(hellos) == len(keys) == 2
    assert keys[0] == keys[1]
    assert {k.slot for k in keys} == {peer.slot}
    actions = await _audit_actions(site, opened.session_id)
    assert actions[-2:] == ["session.participant_disconnected", "session.participant_resumed"]
    assert not any("Allow?" in line for line in agent.lines[asked:])
    assert problems == []


# (KeyboardEvent init, the events the agent must receive), for the console's key mapping.
KEY_CASES: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
    ({"key": "a"}, [{"type": "type_text", "text": "a"}]),
    ({"key": "A", "shiftKey": True}, [{"type": "type_text", "text": "A"}]),
    ({"key": "é"}, [{"type": "type_text", "text": "é"}]),
    ({"key": " "}, [{"type": "type_text", "text": " "}]),
    (
        {"key": "Enter"},
        [
            {"type": "key", "key": "Return", "pressed": True},
            {"type": "key", "key": "Return", "pressed": False},
        ],
    ),
    (
        {"key": "Tab", "shiftKey": True},
        [
            {"type": "key", "key": "Shift", "pressed": True},
            {"type": "key", "key": "Tab", "pressed": True},
            {"type": "key", "key": "Tab", "pressed": False},
            {"type": "key", "key": "Shift", "pressed": False},
        ],
    ),
    (
        {"key": "c", "ctrlKey": True},
        [
            {"type": "key", "key": "Control", "pressed": True},
            {"type": "key", "key": "c", "pressed": True},
            {"type": "key", "key": "c", "pressed": False},
            {"type": "key", "key": "Control", "pressed": False},
        ],
    ),
    (
        {"key": "Delete", "ctrlKey": True, "altKey": True},
        [
            {"type": "key", "key": "Control", "pressed": True},
            {"type": "key", "key": "Alt", "pressed": True},
            {"type": "key", "key": "Delete", "pressed": True},
            {"type": "key", "key": "Delete", "pressed": False},
            {"type": "key", "key": "Alt", "pressed": False},
            {"type": "key", "key": "Control", "pressed": False},
        ],
    ),
    (
        {"key": "F5"},
        [
            {"type": "key", "key": "F5", "pressed": True},
            {"type": "key", "key": "F5", "pressed": False},
        ],
    ),
    (
        {"key": "ArrowLeft"},
        [
            {"type": "key", "key": "Left", "pressed": True},
            {"type": "key", "key": "Left", "pressed": False},
        ],
    ),
    ({"key": "Shift", "shiftKey": True}, []),
    ({"key": "Control", "ctrlKey": True}, []),
    ({"key": "Dead"}, []),
    ({"key": "Unidentified"}, []),
    ({"key": "AudioVolumeUp"}, []),
]


async def test_console_key_mapping_is_what_the_agent_accepts(site: Site, chromium: Browser) -> None:
    """Keys pressed on the console map to the documented events, and the agent's own validator
    accepts every one of them (agent_client/inject.py): no key the console forwards is refused
    on the customer's side."""
    page = await (await chromium.new_context()).new_page()
    await page.goto(site.url("/console"))
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    produced: list[list[dict[str, Any]]] = await page.evaluate(
        """async (cases) => {
            const { keyEvents } = await import("/static/js/input.js");
            return cases.map((init) => keyEvents(new KeyboardEvent("keydown", init)));
        }""",
        [init for init, _ in KEY_CASES],
    )
    assert produced == [events for _, events in KEY_CASES]
    for events in produced:
        for event in events:
            InputEvent.from_json(event, screen_size=(1280, 800))


async def test_two_engineers_see_each_other_and_the_same_words(
    site: Site, chromium: Browser
) -> None:
    """An escalated L3 engineer joins from a second console: each console lists the other, says
    who holds control, and both show the read-back words computed over all three keys."""
    await site.broker.add_user(ENGINEER[0], Role.RSE, ENGINEER[1])
    await site.broker.add_user("eli", Role.ENGINEERING, "Eli Navarro")
    staff = await site.broker.login(ENGINEER[0])
    opened = await _open_case(site, staff, 1)
    joined = await site.broker.call("POST", "/api/v1/join", status=200, json={"code": opened.code})
    agent = await ScriptedAgent.join(site.broker.client, joined["agent_token"], opened.session_id)
    problems: list[str] = []
    rita = await _console_page(chromium, SentFrames(), problems)
    eli = await _console_page(chromium, SentFrames(), problems)
    await _sign_in(rita, site)
    await rita.locator(f"#sessions-body tr[data-session='{opened.session_id}'] button").click()

    async def admit(permission: str) -> int:
        pending: list[msg.ConsentRequest] = await agent.peer.wait(
            lambda: [
                r
                for r in agent.peer.of(msg.ConsentRequest)
                if r.permission == permission and r.request_id not in answered
            ]
        )
        request = pending[0]
        answered.add(request.request_id)
        await agent.peer.wait(lambda: agent.viewer_key(request.slot))
        await agent.grant(request)
        return request.slot

    answered: set[str] = set()
    rita_slot = await admit("view")
    await expect(rita.locator("#s-status")).to_have_attribute("data-status", "observing")

    await eli.goto(site.url("/console"))
    await eli.fill("#username", "eli")
    await eli.fill("#password", PASSWORD)
    await eli.click("#login-submit")
    await eli.locator(f"#sessions-body tr[data-session='{opened.session_id}'] button").click()
    await expect(rita.locator("#people")).to_contain_text("Eli Navarro (L3)waiting for consent")
    eli_slot = await admit("view")
    await expect(rita.locator(f"#people li[data-slot='{eli_slot}']")).to_contain_text("viewing")
    await expect(eli.locator(f"#people li[data-slot='{rita_slot}']")).to_contain_text(
        "Rita Reyes (L2)viewing"
    )

    keys = [agent.keys.public]
    for slot in (rita_slot, eli_slot):
        announced = agent.viewer_key(slot)
        assert announced is not None
        keys.append(PublicKey.from_announce(announced))
    words = " ".join(readback(opened.session_id, keys).words)
    await expect(rita.locator("#rb-words")).to_have_text(words)
    await expect(eli.locator("#rb-words")).to_have_text(words)

    await eli.click("#control-btn")
    await admit("control")
    await expect(eli.locator("#s-control")).to_have_attribute("data-control", "controlling")
    await expect(rita.locator("#s-control")).to_have_text("Eli Navarro has control")
    await expect(rita.locator(f"#people li[data-slot='{eli_slot}']")).to_contain_text("in control")
    assert problems == []
