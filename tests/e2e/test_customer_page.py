"""The customer page in Debian's Chromium against the real broker and relay.

A scripted agent and viewer (``tests/relay_peers.py``) play the other ends through the real
relay, so every state the page shows was decided by the broker's state machine, and every
button the customer presses is checked on the broker's side (room state, audit, case status).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from broker.audit.log import row_to_json
from broker.sessions.participants import Phase
from broker.store.records import AuditQuery
from rsb_protocol import messages as msg
from rsb_protocol.e2e import PublicKey
from rsb_protocol.framing import CUSTOMER_SLOT
from rsb_protocol.readback import readback
from tests.e2e.conftest_pages import (
    CASE,
    ORGANISATION,
    Opened,
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
from tests.relay_peers import ScriptedAgent, ScriptedViewer

__all__ = ["chromium", "site", "tabs"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

COMMAND = re.compile(r"^RSB_AGENT_TOKEN=(\S+) rsb-agent attach --broker (\S+)$")


async def _join_by_form(tab: Tab, site: Site, code: str) -> None:
    await tab.page.goto(site.url("/"))
    await expect(tab.page.locator("body")).to_have_attribute("data-ready", "true")
    await tab.page.fill("#code", f"{code[:3]} {code[3:6]} {code[6:]}")
    await tab.page.click("#join-submit")
    await expect(tab.page.locator("#session-view")).to_be_visible()


async def _agent_token(tab: Tab, site: Site) -> str:
    command = (await tab.page.text_content("#agent-cmd")) or ""
    match = COMMAND.match(command)
    assert match is not None, command
    assert match.group(2) == site.origin
    return match.group(1)


async def _actions(site: Site, session_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await site.services.audit.search(AuditQuery(session_id=session_id, limit=1000))
    return [(e["action"], e["actor_role"] or "", e["details"]) for e in map(row_to_json, rows)]


def _clean(tab: Tab) -> None:
    assert tab.problems == [], tab.problems


async def test_join_link_fragment_never_reaches_the_server(site: Site, tabs: TabFactory) -> None:
    opened = await open_session(site.broker)
    tab = await tabs()
    # The broker's own join link carries the code in the fragment, never in the query.
    assert opened.join_link == site.url(f"/j#{opened.code}")
    response = await tab.page.goto(opened.join_link)
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    await expect(tab.page.locator("#case-number")).to_have_text(opened.case_number)
    await expect(tab.page.locator("#engineer")).to_have_text(
        "Rita Reyes, remote support engineer (level 2)"
    )
    await expect(tab.page.locator("#ask-view")).to_contain_text("Rita Reyes will ask to see")
    await expect(tab.page.locator("#org-name")).to_have_text(ORGANISATION)
    # The code was wiped from the address bar, and no request line ever carried it.
    assert "#" not in tab.page.url and opened.code not in tab.page.url
    assert not [url for url in tab.request_urls() if opened.code in url]
    assert not [line for line in site.seen if opened.code in line]
    assert "/api/v1/join" in site.seen and "/j" in site.seen
    # The token rides as a subprotocol: the socket's URL carries no token and no code.
    await expect(tab.page.locator("#state-text")).to_have_attribute("data-phase", "waiting")
    assert tab.socket_urls == [site.origin.replace("http", "ws") + "/ws/customer"]
    # No inline script exists to be blocked: every script has a src on this origin.
    inline = await tab.page.evaluate(
        "[...document.scripts].filter((s) => !s.src || s.textContent.trim()).length"
    )
    assert inline == 0
    # The copy button puts exactly the shown command on the clipboard.
    await tab.page.click("#copy-btn")
    await expect(tab.page.locator("#copy-status")).to_have_text("Copied.")
    copied = await tab.page.evaluate("navigator.clipboard.readText()")
    assert copied == await tab.page.text_content("#agent-cmd")
    assert COMMAND.match(copied)
    # Joining used the code up: it cannot be used a second time.
    await site.broker.call("POST", "/api/v1/join", status=410, json={"code": opened.code})
    _clean(tab)


async def test_wrong_code_gives_a_clear_error(site: Site, tabs: TabFactory) -> None:
    await open_session(site.broker)
    tab = await tabs()
    await tab.page.goto(site.url("/"))
    await tab.page.fill("#code", "12345")
    await tab.page.click("#join-submit")
    await expect(tab.page.locator("#join-error")).to_have_text(
        "A session code has 10 digits. Please check it and try again."
    )
    assert "/api/v1/join" not in site.seen  # refused in the page, nothing sent

    await tab.page.fill("#code", "000 000 0000")
    await tab.page.click("#join-submit")
    await expect(tab.page.locator("#join-error")).to_contain_text(
        "This code cannot be used: it was already used, it has expired, or it was mistyped."
    )
    await expect(tab.page.locator("#session-view")).to_be_hidden()
    _clean(tab)


async def test_spanish_from_the_browser_language_and_the_switch(
    site: Site, tabs: TabFactory
) -> None:
    opened = await open_session(site.broker)
    tab = await tabs(locale="es-ES")
    await tab.page.goto(site.url(f"/j#{opened.code}"))
    page = tab.page
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await expect(page.locator("#engineer")).to_have_text(
        "Rita Reyes, técnico de asistencia remota (nivel 2)"
    )
    await expect(page.locator("#state-text")).to_have_text(
        "Esperando a que el programa de asistencia se inicie en su ordenador."
    )
    await expect(page.locator("#warning h2")).to_have_text("Antes de continuar")
    await expect(page.locator(".lang-btn[data-lang=es]")).to_have_attribute("aria-pressed", "true")

    await page.click(".lang-btn[data-lang=en]")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#engineer")).to_have_text(
        "Rita Reyes, remote support engineer (level 2)"
    )
    await expect(page.locator("#state-text")).to_have_text(
        "Waiting for the support program to start on your computer."
    )
    await expect(page.locator("#warning h2")).to_have_text("Before you continue")

    await page.click(".lang-btn[data-lang=es]")
    await expect(page.locator("#pause-btn")).to_have_text("Pausar")
    _clean(tab)


async def _live_session(site: Site, tab: Tab) -> tuple[Opened, ScriptedAgent, ScriptedViewer]:
    """Customer joined by the form, agent attached with the page's token, engineer viewing."""
    opened = await open_session(site.broker)
    await _join_by_form(tab, site, opened.code)
    state = tab.page.locator("#state-text")
    await expect(state).to_have_attribute("data-phase", "waiting")

    agent = await ScriptedAgent.join(
        site.broker.client, await _agent_token(tab, site), opened.session_id
    )
    await expect(state).to_have_text(
        "The support program is connected. Waiting for the engineer to join."
    )
    viewer = await ScriptedViewer.join(site.broker.client, opened.staff_token, opened.session_id)
    await expect(state).to_have_text(
        "Waiting for your consent. Connected: Rita Reyes (L2). Nobody can see your screen"
        " until you say yes in the support program window."
    )
    request = await agent.peer.wait(lambda: agent.peer.of(msg.ConsentRequest))
    await agent.grant(request[0])
    await expect(state).to_have_text("Your screen is being viewed by Rita Reyes (L2).")
    return opened, agent, viewer


async def test_live_state_read_back_and_the_customers_buttons(site: Site, tabs: TabFactory) -> None:
    tab = await tabs()
    page = tab.page
    opened, agent, viewer = await _live_session(site, tab)
    room = site.hub.room(opened.session_id)
    assert room is not None and room.phase is Phase.OBSERVING

    # The page shows the same read-back words as the Python reference over the same keys:
    # the agent's, the engineer's, and the page's own chat key, which the broker relayed.
    agent_key = agent.keys.public
    viewer_key = PublicKey.from_announce(agent.viewer_key(viewer.slot) or _missing())
    page_key = PublicKey.from_announce(
        await agent.peer.wait(lambda: agent.viewer_key(CUSTOMER_SLOT))
    )
    expected = readback(opened.session_id, [agent_key, viewer_key, page_key])
    await expect(page.locator("#readback-words")).to_have_attribute(
        "data-words", " ".join(expected.words)
    )
    await screenshot(page, "customer.png")

    # Control: the engineer asks, the agent says yes, the page names who controls.
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, "open the settings"))
    control = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission.value == "control"]
    )
    await agent.grant(control[0])
    state = page.locator("#state-text")
    await expect(state).to_have_text("Your computer is being controlled by Rita Reyes (L2).")
    assert room.controller is not None

    # Revoke control: the broker drops the controller at once and tells the agent.
    await page.click("#revoke-control-btn")
    await eventually(lambda: room.controller is None, "control revoked on the broker")
    await expect(state).to_have_text("Your screen is being viewed by Rita Reyes (L2).")
    revoked = await agent.peer.wait(
        lambda: [
            m
            for m in agent.peer.of(msg.ConsentRevoke)
            if m.permission.value == "control" and m.slot == viewer.slot
        ]
    )
    assert revoked
    actions = await _actions(site, opened.session_id)
    assert ("session.control_revoked", "customer", {"pid": "rita", "reason": "revoked"}) in actions

    # Pause and resume: no frames reach the viewer while paused.
    await page.click("#pause-btn")
    await eventually(lambda: room.phase is Phase.PAUSED, "paused on the broker")
    await expect(state).to_have_text("Sharing is paused. Nobody can see or control your computer.")
    assert room.frame_targets == ()
    await agent.peer.wait(lambda: agent.peer.of(msg.Pause))
    await page.click("#resume-btn")
    await eventually(lambda: room.phase is Phase.OBSERVING, "resumed on the broker")
    await expect(state).to_have_text("Your screen is being viewed by Rita Reyes (L2).")

    # End: the broker ends the session, closes every socket, and the page asks for feedback.
    await page.click("#end-btn")
    await expect(state).to_have_text(
        "The session has ended. Nobody can see or control your computer."
    )
    await expect(page.locator("#feedback")).to_be_visible()
    session = await site.services.sessions.get(opened.session_id)
    assert session.state == "ended"
    assert await viewer.peer.closed() == 4103
    ended = [d for a, r, d in await _actions(site, opened.session_id) if a == "session.ended"]
    assert ended and ended[-1]["by"] == "customer"

    # "My problem is solved" resolves the case.
    await page.click("#solved-btn")
    await expect(page.locator("#feedback-result")).to_have_text(
        f"Thank you. Case {opened.case_number} is now marked as resolved."
    )
    case = await site.broker.call(
        "GET", f"/api/v1/cases/{opened.case_number}", status=200, headers=opened.staff
    )
    assert case["status"] == "resolved"
    await agent.peer.close()
    _clean(tab)


def _missing() -> msg.PublicKeyAnnounce:
    raise AssertionError("the agent never received the viewer's public key")


async def test_stop_viewing_and_not_solved(site: Site, tabs: TabFactory) -> None:
    tab = await tabs()
    page = tab.page
    opened, agent, viewer = await _live_session(site, tab)
    room = site.hub.room(opened.session_id)
    assert room is not None

    await page.click("#stop-viewing-btn")
    await eventually(lambda: room.frame_targets == (), "viewing revoked on the broker")
    await expect(page.locator("#state-text")).to_contain_text("Waiting for your consent.")

    # Ending without the socket: the page falls back to POST /api/v1/customer/end.
    await agent.peer.close()
    await viewer.peer.close()
    await page.click("#end-btn")
    await expect(page.locator("#feedback")).to_be_visible()
    await eventually(lambda: site.hub.room(opened.session_id) is None, "room closed")
    await page.click("#not-solved-btn")
    await expect(page.locator("#feedback-result")).to_contain_text(
        f"Case {opened.case_number} stays open"
    )
    case = await site.services.store.get_case(opened.case_number)
    assert case is not None and case.status == "in_progress"
    _clean(tab)


async def test_status_check_without_login(site: Site, tabs: TabFactory) -> None:
    opened = await open_session(site.broker)
    tab = await tabs()
    page = tab.page
    await page.goto(site.url("/"))
    await page.fill("#check-case", opened.case_number)
    await page.fill("#check-serial", "wrong serial")
    await page.click("#check-submit")
    await expect(page.locator("#check-result .error")).to_have_text(
        "No case matches that case number and serial number."
    )

    await page.fill("#check-serial", CASE["serial_number"])
    await page.click("#check-submit")
    await expect(page.locator("#check-summary")).to_have_text(
        f"Case {opened.case_number}, {CASE['product']}: in progress"
    )
    rows = page.locator("#check-sessions tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Rita Reyes")
    await expect(rows.first).to_contain_text("waiting")
    await page.click(".lang-btn[data-lang=es]")
    await expect(page.locator("#check-summary")).to_have_text(
        f"Caso {opened.case_number}, {CASE['product']}: en curso"
    )
    _clean(tab)


async def test_the_page_reconnects_after_a_dropped_socket(site: Site, tabs: TabFactory) -> None:
    tab = await tabs()
    page = tab.page
    opened, agent, viewer = await _live_session(site, tab)
    room = site.hub.room(opened.session_id)
    assert room is not None and len(room.customers) == 1
    dropped = next(iter(room.customers))
    dropped.close_soon(1001, "broker restarting")
    await expect(page.locator("#state-text")).to_have_attribute("data-phase", "reconnecting")
    await expect(page.locator("#pause-btn")).to_be_disabled()
    # Back with the same token: a new socket, the same session, the same live state.
    await expect(page.locator("#state-text")).to_have_text(
        "Your screen is being viewed by Rita Reyes (L2)."
    )
    await eventually(lambda: room.customers and dropped not in room.customers, "reconnected")
    assert len(tab.socket_urls) == 2
    await page.click("#pause-btn")
    await eventually(lambda: room.phase is Phase.PAUSED, "paused after the reconnect")
    for peer in (agent.peer, viewer.peer):
        await peer.close()
    _clean(tab)
