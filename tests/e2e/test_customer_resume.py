"""The customer page across a reload, its notice when an engineer waits, and its error texts
in Spanish, in Chromium against the real broker and relay (a scripted agent and engineer).

A reload mid-session used to drop the customer back to code entry with the code spent. The
page now keeps its join answer in this tab's sessionStorage (never localStorage, never the
URL) and resumes: the state, the buttons, the chat so far and, after the end, the "solved?"
question come back; a token the broker no longer takes is forgotten and the page says why.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Page, expect

from broker.sessions.participants import Phase
from broker.types import Role
from rsb_protocol import messages as msg
from tests.e2e.conftest_pages import (
    Opened,
    Site,
    Tab,
    TabFactory,
    chromium,
    eventually,
    open_session,
    site,
    tabs,
)
from tests.e2e.test_customer_page import _agent_token, _join_by_form
from tests.relay_peers import ScriptedAgent, ScriptedViewer

__all__ = ["chromium", "site", "tabs"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

KEY = "rsb.customer.session"
VIEWED = "Your screen is being viewed by Rita Reyes (L2)."


def _clean(tab: Tab) -> None:
    assert tab.problems == [], tab.problems


async def _viewed(site: Site, tab: Tab) -> tuple[Opened, ScriptedAgent, ScriptedViewer]:
    opened = await open_session(site.broker)
    await _join_by_form(tab, site, opened.code)
    agent = await ScriptedAgent.join(
        site.broker.client, await _agent_token(tab, site), opened.session_id
    )
    viewer = await ScriptedViewer.join(site.broker.client, opened.staff_token, opened.session_id)
    request = await agent.peer.wait(lambda: agent.peer.of(msg.ConsentRequest))
    await agent.grant(request[0])
    await expect(tab.page.locator("#state-text")).to_have_text(VIEWED)
    return opened, agent, viewer


async def _storage(page: Page) -> dict[str, Any]:
    raw: dict[str, Any] = await page.evaluate(
        "({session: sessionStorage.getItem('rsb.customer.session'),"
        " sessionKeys: Object.keys(sessionStorage), localKeys: Object.keys(localStorage)})"
    )
    return raw


async def test_a_reload_mid_session_resumes_it(site: Site, tabs: TabFactory) -> None:
    tab = await tabs()
    page = tab.page
    opened, agent, viewer = await _viewed(site, tab)
    room = site.hub.room(opened.session_id)
    assert room is not None
    # A line of chat before the reload.
    await expect(page.locator("#chat-input")).to_be_enabled()
    await page.fill("#chat-input", "the printer shows E-51")
    await page.click("#chat-send")
    await expect(page.locator("#chat-log .chat-line.own")).to_have_count(1)
    command = await page.text_content("#agent-cmd")

    # The token is in sessionStorage, nowhere else: not localStorage, not the address.
    stored = await _storage(page)
    assert stored["localKeys"] == [] and stored["sessionKeys"] == [KEY]
    joined = json.loads(stored["session"])["joined"]
    token = joined["customer_token"]
    assert token and joined["session_id"] == opened.session_id

    await page.reload()
    # Back without a code: the state, the buttons, the chat and the agent command.
    await expect(page.locator("#session-view")).to_be_visible()
    await expect(page.locator("#join-view")).to_be_hidden()
    await expect(page.locator("#state-text")).to_have_text(VIEWED)
    await expect(page.locator("#pause-btn")).to_be_enabled()
    await expect(page.locator("#stop-viewing-btn")).to_be_enabled()
    await expect(page.locator("#case-number")).to_have_text(opened.case_number)
    await expect(page.locator("#chat-log .chat-line.own .text")).to_have_text(
        ["the printer shows E-51"]
    )
    assert await page.text_content("#agent-cmd") == command
    assert token not in page.url and "#" not in page.url
    assert not [line for line in site.seen if token in line]
    assert (await _storage(page))["localKeys"] == []
    # The resumed page is live: its pause reaches the broker.
    await page.click("#pause-btn")
    await eventually(lambda: room.phase is Phase.PAUSED, "paused after the reload")
    await page.click("#resume-btn")
    await eventually(lambda: room.phase is Phase.OBSERVING, "resumed after the reload")

    # After the end, a reload still asks whether the problem is solved.
    await page.click("#end-btn")
    await expect(page.locator("#feedback")).to_be_visible()
    await page.reload()
    await expect(page.locator("#feedback")).to_be_visible()
    await expect(page.locator("#state-text")).to_have_text(
        "The session has ended. Nobody can see or control your computer."
    )
    await page.click("#solved-btn")
    await expect(page.locator("#feedback-result")).to_contain_text("marked as resolved")
    # Answered: the page forgets the session, and a reload starts afresh.
    assert (await _storage(page))["sessionKeys"] == []
    await page.reload()
    await expect(page.locator("#join-view")).to_be_visible()
    for peer in (agent.peer, viewer.peer):
        await peer.close()
    _clean(tab)


async def test_a_token_that_no_longer_works_is_forgotten_with_the_reason(
    site: Site, tabs: TabFactory
) -> None:
    tab = await tabs(locale="es-ES")
    page = tab.page
    opened = await open_session(site.broker)
    await _join_by_form(tab, site, opened.code)
    await expect(page.locator("#state-text")).to_have_attribute("data-phase", "waiting")
    # The tab leaves the page (its sessionStorage stays), the session's tokens expire (the
    # broker's clock moves past their life), and the tab comes back.
    await page.goto("about:blank")
    ttl = site.settings.session_token_ttl.total_seconds()
    site.broker.clock.advance(seconds=ttl + 120)  # past the 30 s leeway
    await page.goto(site.url("/"))
    await expect(page.locator("#join-view")).to_be_visible()
    await expect(page.locator("#session-view")).to_be_hidden()
    # The broker's close code, in Spanish.
    await expect(page.locator("#join-error")).to_have_text(
        "No se pudo reanudar su sesión anterior en esta página: El acceso de esta página a la"
        " sesión no es válido: ha caducado o es de otra sesión. Pida un código nuevo al técnico."
    )
    assert (await _storage(page))["sessionKeys"] == []
    await page.click(".lang-btn[data-lang=en]")
    await expect(page.locator("#join-error")).to_have_text(
        "Your earlier session on this page could not be resumed: This page's access to the"
        " session is not valid: it expired or belongs to another session. Ask the engineer for"
        " a new code."
    )
    _clean(tab)


async def test_a_waiting_request_shows_a_focused_notice_at_once(
    site: Site, tabs: TabFactory
) -> None:
    tab = await tabs()
    page = tab.page
    opened, agent, viewer = await _viewed(site, tab)
    notice = page.locator("#notice")
    await expect(notice).to_be_hidden()
    # The customer is typing in the chat when the engineer asks for control.
    await page.focus("#chat-input")
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, "open the settings"))
    await expect(notice).to_be_visible()
    await expect(notice).to_be_focused()
    await expect(page.locator("#notice-list li")).to_have_text(
        ["Rita Reyes (L2) asks to control your mouse and keyboard. Reason given: open the settings"]
    )
    await expect(notice).to_contain_text("Answer yes or no in the support program window")
    assert await notice.evaluate("(el) => el.getBoundingClientRect().top >= 0")
    # Answered in the support program: the notice goes by itself.
    control = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission.value == "control"]
    )
    await agent.grant(control[0])
    await expect(notice).to_be_hidden()
    await expect(page.locator("#state-text")).to_have_text(
        "Your computer is being controlled by Rita Reyes (L2)."
    )
    # A new engineer who waits to see the screen shows it too, in the page's language.
    await page.click(".lang-btn[data-lang=es]")
    second = await site.broker.staff("sam", Role.RSE, "Sam Soto")
    other = await ScriptedViewer.join(
        site.broker.client, second["Authorization"].removeprefix("Bearer "), opened.session_id
    )
    await expect(notice).to_be_visible()
    await expect(notice).to_be_focused()
    await expect(page.locator("#notice-title")).to_have_text("Un técnico espera su respuesta")
    await expect(page.locator("#notice-list li")).to_have_text(
        ["Sam Soto (L2) le pide ver su pantalla."]
    )
    # "I have seen it" hides it until the next request.
    await page.click("#notice-ok")
    await expect(notice).to_be_hidden()
    for peer in (agent.peer, viewer.peer, other.peer):
        await peer.close()
    _clean(tab)


async def test_broker_errors_read_in_spanish(site: Site, tabs: TabFactory) -> None:
    tab = await tabs(locale="es-ES")
    page = tab.page
    opened = await open_session(site.broker)
    await _join_by_form(tab, site, opened.code)
    await expect(page.locator("#state-text")).to_have_attribute("data-phase", "waiting")
    # The engineer ends the session before the customer answers; the time to answer passes.
    await site.broker.call(
        "POST",
        f"/api/v1/sessions/{opened.session_id}/end",
        status=200,
        headers=opened.staff,
        json={"reason": "done"},
    )
    await expect(page.locator("#feedback")).to_be_visible()
    site.broker.clock.advance(seconds=site.settings.customer_confirm_window.total_seconds() + 1)
    await page.click("#solved-btn")
    await expect(page.locator("#feedback-result")).to_have_text(
        "No se pudo guardar su respuesta: Ya ha pasado el plazo para responder sobre esta sesión."
    )
    _clean(tab)
