"""Chat between the customer page and an engineer, with every part real.

The customer page runs in Debian's Chromium; the agent is the real `rsb-agent attach` process
(test-pattern source, terminal prompt) started with the token the page shows, its traffic
passing through `TcpProxy`; the engineer is the `rsb_viewer` client. The page seals its chat
to the agent, the agent passes it on under the group key, and the engineer's answer comes back
sealed to the page's key.

Proof comes from outside the code under test: what the page shows, what the agent printed,
what the viewer decrypted, and every byte the broker received or relayed on the way: the
page's WebSocket frames (Playwright), the agent's bytes (the proxy), the viewer's messages (as
received), the SQLite files. None of them contains the chat text.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import WebSocket, expect

from broker.audit.log import row_to_json
from broker.store.records import AuditQuery
from rsb_protocol.e2e import PairwiseChannel, Side
from rsb_protocol.framing import CUSTOMER_SLOT, FrameType, peek_route
from rsb_viewer.client import ViewerClient
from rsb_viewer.session import ViewerSession
from tests.conftest import PASSWORD
from tests.e2e.conftest_pages import (
    WAIT_S,
    Site,
    Tab,
    TabFactory,
    chromium,
    eventually,
    open_session,
    screenshot,
    site,
    tabs,
)
from tests.integration.agent_harness import AgentProcess, TcpProxy, client_frames, data_frames

__all__ = ["chromium", "site", "tabs"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

COMMAND = re.compile(r"^RSB_AGENT_TOKEN=(\S+) rsb-agent attach --broker (\S+)$")
READBACK = re.compile(r"Read-back: ((?:[a-z]+ ){3}[a-z]+)")
FROM_CUSTOMER = "CUSTOMER-SECRET the printer shows E-51 ¿ñ?"
FROM_ENGINEER = "ENGINEER-SECRET open tray 2 and press OK"
AGAIN_CUSTOMER = "CUSTOMER-SECRET done, tray 2 is open"
AGAIN_ENGINEER = "ENGINEER-SECRET thanks, now print a test page"
SECRETS = [FROM_CUSTOMER, FROM_ENGINEER, AGAIN_CUSTOMER, AGAIN_ENGINEER]


class RecordingSession(ViewerSession):
    """The engineer's viewer, keeping every message exactly as the broker relayed it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: list[str | bytes] = []

    def receive(self, data: str | bytes) -> list[str | bytes]:
        self.messages.append(data)
        return super().receive(data)


@dataclass
class Wire:
    """Every WebSocket payload the page sent or received, as Chromium saw it."""

    payloads: list[str | bytes] = field(default_factory=list)

    def watch(self, ws: WebSocket) -> None:
        ws.on("framesent", self.keep)
        ws.on("framereceived", self.keep)

    def keep(self, payload: str | bytes) -> None:
        self.payloads.append(payload)


@dataclass
class Scene:
    site: Site
    tab: Tab
    wire: Wire
    session_id: str
    staff_token: str
    proxy: TcpProxy
    agent: AgentProcess | None = None
    viewer: ViewerClient | None = None


@pytest.fixture
async def scene(site: Site, tabs: TabFactory) -> AsyncIterator[Scene]:
    opened = await open_session(site.broker)
    tab = await tabs()
    wire = Wire()
    tab.page.on("websocket", wire.watch)
    proxy = TcpProxy(site.server.port or 0)
    await proxy.start()
    scene = Scene(site, tab, wire, opened.session_id, opened.staff_token, proxy)
    await tab.page.goto(opened.join_link)
    await expect(tab.page.locator("#state-text")).to_have_attribute("data-phase", "waiting")
    try:
        yield scene
    finally:
        if scene.viewer is not None:
            await scene.viewer.close()
        if scene.agent is not None:
            assert await scene.agent.stop() == 0, scene.agent.output
        await proxy.close()


async def _start_agent(scene: Scene) -> AgentProcess:
    """`rsb-agent attach` exactly as the page tells the customer, through the proxy."""
    command = (await scene.tab.page.text_content("#agent-cmd")) or ""
    match = COMMAND.match(command)
    assert match is not None and match.group(2) == scene.site.origin, command
    env = {**os.environ, "RSB_AGENT_TOKEN": match.group(1)}
    args = ["attach", "--broker", f"http://127.0.0.1:{scene.proxy.port}"]
    agent = await AgentProcess.start([*args, "--source", "test-pattern", "--ui", "terminal"], env)
    scene.agent = agent
    await agent.wait_for("Waiting for the engineer")
    return agent


def _engineer_says(channel: PairwiseChannel, text: str) -> bytes:
    """What the console's chat box sends: the text sealed with the engineer's pairwise key."""
    return channel.seal(FrameType.CHAT, text.encode("utf-8"))


def _chat_frames(messages: list[bytes]) -> list[bytes]:
    return [m for m in messages if m[:1] == b"\xb1" and peek_route(m)[0] is FrameType.CHAT]


async def _chat_events(scene: Scene) -> list[dict[str, Any]]:
    query = AuditQuery(session_id=scene.session_id, limit=1000)
    rows = await scene.site.services.audit.search(query)
    return [e for e in map(row_to_json, rows) if e["action"] == "session.chat"]


async def test_customer_and_engineer_chat_through_the_agent_and_the_broker_reads_nothing(
    scene: Scene,
) -> None:
    page = scene.tab.page
    status = page.locator("#chat-status")
    await expect(status).to_have_text("Chat starts when the support program is running.")
    await expect(page.locator("#chat-send")).to_be_disabled()

    agent = await _start_agent(scene)
    # The page's key reached the agent when it connected: chat from the page is open.
    await agent.wait_for("Chat from the web page is open.")
    session = RecordingSession(scene.session_id)
    viewer = ViewerClient(scene.site.origin, scene.staff_token, scene.session_id)
    viewer.session = session
    scene.viewer = viewer
    await viewer.connect()
    await expect(status).to_have_text("Chat starts when you let an engineer see your screen.")

    # The read-back words: the agent's prompt, the engineer's viewer and the page all cover
    # the agent's, the engineer's and the page's keys, and agree.
    question = await agent.answer("y")
    found = READBACK.search("\n".join(question))
    assert found is not None, question
    words = found.group(1)
    await viewer.wait_first_keyframe(WAIT_S)
    assert " ".join(viewer.readback.words) == words
    await expect(page.locator("#readback-words")).to_have_attribute("data-words", words)
    assert len(viewer.session.public_keys) == 4  # ours, the agent's two, the page's

    # Customer -> engineer: typed in the page, decrypted by the viewer only.
    await expect(status).to_have_attribute("data-state", "open")
    await page.fill("#chat-input", FROM_CUSTOMER)
    await page.click("#chat-send")
    mine = page.locator("#chat-log .chat-line.own")
    await expect(mine.locator(".who")).to_have_text("You")
    await expect(mine.locator(".text")).to_have_text(FROM_CUSTOMER)
    await viewer.wait_for(lambda c: FROM_CUSTOMER in c.session.chat, WAIT_S)
    await agent.wait_for(f"You (web page): {FROM_CUSTOMER}")

    # Engineer -> customer: sealed with the engineer's own pairwise key, shown on the page
    # with the engineer's name.
    agent_key = viewer.session.agent_key
    assert agent_key is not None and viewer.slot is not None
    channel = PairwiseChannel(
        scene.session_id, session.own, agent_key, viewer.slot, Side.VIEWER, session.epoch
    )
    await viewer.send_raw(_engineer_says(channel, FROM_ENGINEER))
    theirs = page.locator("#chat-log .chat-line:not(.own)")
    await expect(theirs.locator(".who")).to_have_text("Rita Reyes")
    await expect(theirs.locator(".text")).to_have_text(FROM_ENGINEER)
    await agent.wait_for(f"Rita Reyes: {FROM_ENGINEER}")

    # The page's socket drops: it reconnects with the same key, so the words stay the same
    # everywhere and the chat goes on (the agent's channel kept its counters).
    room = scene.site.hub.room(scene.session_id)
    assert room is not None and room.chat_page is not None
    dropped = room.chat_page
    dropped.close_soon(1001, "broker restarting")
    await eventually(lambda: room.chat_page not in (None, dropped), "the page announced again")
    await agent.wait_for(f"Read-back words now: {words}")
    await expect(page.locator("#readback-words")).to_have_attribute("data-words", words)
    await expect(status).to_have_attribute("data-state", "open")
    await page.fill("#chat-input", AGAIN_CUSTOMER)
    await page.click("#chat-send")
    await viewer.wait_for(lambda c: AGAIN_CUSTOMER in c.session.chat, WAIT_S)
    await viewer.send_raw(_engineer_says(channel, AGAIN_ENGINEER))
    await expect(theirs.locator(".text")).to_have_text([FROM_ENGINEER, AGAIN_ENGINEER])
    await screenshot(page, "customer-chat.png")
    assert " ".join(viewer.readback.words) == words
    assert list(viewer.session.chat) == [FROM_CUSTOMER, AGAIN_CUSTOMER]

    # Every byte the broker received or relayed: none carries the text.
    await viewer.close()
    assert await agent.stop() == 0, agent.output
    secrets = [s.encode("utf-8") for s in SECRETS] + [b"SECRET"]
    page_bytes = [p.encode("utf-8") if isinstance(p, str) else p for p in scene.wire.payloads]
    assert len([p for p in scene.wire.payloads if isinstance(p, bytes)]) >= 4
    agent_bytes = [
        bytes(frame.data)
        for link in scene.proxy.websockets()
        for frame in data_frames(client_frames(bytes(link.sent)))
    ]
    viewer_bytes = [m.encode("utf-8") if isinstance(m, str) else m for m in session.messages]
    # The chat did cross those sockets, sealed: two lines to the engineers and two to the page
    # from the agent, two CHAT frames relayed to the viewer.
    assert len(_chat_frames(agent_bytes)) == 4 and len(_chat_frames(viewer_bytes)) == 2
    for data in page_bytes + agent_bytes + viewer_bytes:
        assert not [s for s in secrets if s in data]
    await scene.site.hub.tick()
    db = Path(scene.site.settings.db)
    stored = b"".join(path.read_bytes() for path in db.parent.glob(db.name + "*"))
    assert stored and b"SECRET" not in stored
    # The audit log has the customer's two lines as metadata, by the customer.
    events = await _chat_events(scene)
    assert [e["actor_role"] for e in events].count("customer") == 2
    assert scene.tab.problems == [], scene.tab.problems


async def test_the_console_reads_the_customer_and_answers_with_the_same_words(
    scene: Scene, tabs: TabFactory
) -> None:
    """The engineer in the browser console: the customer's line is labelled as the customer's,
    the page is listed as the customer's chat, and the console shows the same words."""
    page = scene.tab.page
    agent = await _start_agent(scene)
    await agent.wait_for("Chat from the web page is open.")
    console_tab = await tabs()
    console = console_tab.page
    await console.goto(scene.site.url("/console"))
    await expect(console.locator("body")).to_have_attribute("data-ready", "true")
    await console.fill("#username", "rita")
    await console.fill("#password", PASSWORD)
    await console.click("#login-submit")
    await expect(console.locator("#whoami-text")).to_have_text("Rita Reyes (L2)")
    await console.locator(f"#sessions-body tr[data-session='{scene.session_id}'] button").click()

    question = await agent.answer("y")
    found = READBACK.search("\n".join(question))
    assert found is not None, question
    words = found.group(1)
    await expect(console.locator("#rb-words")).to_have_text(words)
    await expect(page.locator("#readback-words")).to_have_attribute("data-words", words)
    customer = console.locator(f"#people li[data-slot='{CUSTOMER_SLOT}']")
    await expect(customer).to_contain_text("Customer")
    await expect(customer.locator(".tag")).to_have_text(["web page, chat"])

    await expect(page.locator("#chat-status")).to_have_attribute("data-state", "open")
    await page.fill("#chat-input", FROM_CUSTOMER)
    await page.click("#chat-send")
    line = console.locator("#chat-log li.theirs")
    await expect(line).to_have_text(f"Customer:{FROM_CUSTOMER}")
    await expect(console.locator("#chat-send")).to_be_enabled()
    await console.fill("#chat-input", FROM_ENGINEER)
    await console.click("#chat-send")
    theirs = page.locator("#chat-log .chat-line:not(.own)")
    await expect(theirs.locator(".who")).to_have_text("Rita Reyes")
    await expect(theirs.locator(".text")).to_have_text(FROM_ENGINEER)
    await agent.wait_for(f"Rita Reyes: {FROM_ENGINEER}")
    # Each person's line is audited once, as metadata: the engineer's by the console's `chat`
    # message, the customer's by the broker from the frame header.
    roles = sorted(e["actor_role"] for e in await _chat_events(scene))
    assert roles == ["customer", "rse"]
    assert scene.tab.problems == [] and console_tab.problems == []
