"""The customer page on a phone, in Chromium's phone emulation, against the real broker.

A phone cannot run the support program, so opening the join link there must not spend the
code. The page offers "open this on your computer" (nothing sent) or "use this phone for the
chat and the status", which spends the code for the customer part only and shows a handoff
code; a desktop context redeems that code, once, for the agent part, and a scripted agent
joins with the token that page shows.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest_pages import (
    Site,
    Tab,
    TabFactory,
    chromium,
    open_session,
    site,
    tabs,
)
from tests.relay_peers import ScriptedAgent

__all__ = ["chromium", "site", "tabs"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

PHONE: dict[str, Any] = {
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36"
    ),
    "viewport": {"width": 412, "height": 915},
    "device_scale_factor": 2.625,
    "is_mobile": True,
    "has_touch": True,
}
SPACED_CODE = re.compile(r"^[0-9]{3} [0-9]{3} [0-9]{4}$")
COMMAND = re.compile(r"^RSB_AGENT_TOKEN=(\S+) rsb-agent attach --broker (\S+)$")


def _clean(tab: Tab) -> None:
    assert tab.problems == [], tab.problems


def _spaced(code: str) -> str:
    return f"{code[:3]} {code[3:6]} {code[6:]}"


async def test_a_phone_does_not_spend_the_code_and_offers_the_two_ways(
    site: Site, tabs: TabFactory
) -> None:
    opened = await open_session(site.broker)
    phone = await tabs(**PHONE)
    page = phone.page
    await page.goto(opened.join_link)
    await expect(page.locator("body")).to_have_attribute("data-device", "phone")
    await expect(page.locator("#device-view")).to_be_visible()
    await expect(page.locator("#device-title")).to_be_focused()
    await expect(page.locator("#join-view")).to_be_hidden()
    await expect(page.locator("#session-view")).to_be_hidden()
    # (a) what to type on the computer: the short address and the same code, still unspent.
    host = site.origin.removeprefix("http://")
    await expect(page.locator("#device-address")).to_have_text(f"{host}/j")
    await expect(page.locator("#device-code")).to_have_text(_spaced(opened.code))
    assert "/api/v1/join" not in site.seen
    session = await site.services.sessions.get(opened.session_id)
    assert session.code_used_at is None
    # The code left the address bar at once, as on a computer.
    assert opened.code not in page.url
    # Back to code entry: the code is in the field, and submitting it offers the choice again.
    await page.click("#device-back-btn")
    await expect(page.locator("#code")).to_have_value(_spaced(opened.code))
    await page.click("#join-submit")
    await expect(page.locator("#device-view")).to_be_visible()
    assert "/api/v1/join" not in site.seen
    _clean(phone)


async def test_the_phone_hands_the_agent_part_to_the_computer_once(
    site: Site, tabs: TabFactory
) -> None:
    opened = await open_session(site.broker)
    phone = await tabs(**PHONE)
    page = phone.page
    await page.goto(opened.join_link)
    await page.click("#device-phone-btn")
    # (b) the code is spent for the customer part: status and buttons, no agent command.
    await expect(page.locator("#session-view")).to_be_visible()
    await expect(page.locator("body")).to_have_attribute("data-part", "customer")
    await expect(page.locator("#agent-box")).to_be_hidden()
    await expect(page.locator("#state-text")).to_have_attribute("data-phase", "waiting")
    await expect(page.locator("#end-btn")).to_be_enabled()
    box = page.locator("#handoff-box")
    await expect(box).to_be_visible()
    await expect(box).to_have_attribute("data-state", "code")
    await expect(page.locator("#handoff-code")).to_have_text(SPACED_CODE)
    shown = (await page.text_content("#handoff-code")) or ""
    handoff = shown.replace(" ", "")
    assert re.fullmatch(r"[0-9]{10}", handoff) and handoff != opened.code
    await expect(page.locator("#handoff-expiry")).to_contain_text("The code works until")
    # The QR code is an image the page drew from the broker's data: URL.
    qr = page.locator("#handoff-qr")
    assert (await qr.get_attribute("src") or "").startswith("data:image/svg+xml")
    assert await qr.evaluate("(img) => img.complete && img.naturalWidth > 0")
    await expect(qr).to_have_attribute("alt", "QR code of the link for your computer")
    # The phone holds the customer token only; no request line carried a code.
    stored = await page.evaluate("sessionStorage.getItem('rsb.customer.session')")
    assert stored is not None and '"agent_token":null' in stored
    assert not [line for line in site.seen if opened.code in line or handoff in line]
    session = await site.services.sessions.get(opened.session_id)
    assert session.code_used_at is not None

    # The computer opens the handoff link (as the QR code says) and gets the agent part.
    computer = await tabs()
    await computer.page.goto(site.url(f"/j#{handoff}"))
    await expect(computer.page.locator("body")).to_have_attribute("data-part", "agent")
    await expect(computer.page.locator("#case-number")).to_have_text(opened.case_number)
    await expect(computer.page.locator("#part-note")).to_be_visible()
    await expect(computer.page.locator("#agent-box")).to_be_visible()
    for hidden in ("#controls", "#chat-box", "#state-text", "#handoff-box"):
        await expect(computer.page.locator(hidden)).to_be_hidden()
    assert computer.socket_urls == []  # the phone follows the session, not this page
    match = COMMAND.match((await computer.page.text_content("#agent-cmd")) or "")
    assert match is not None
    agent = await ScriptedAgent.join(site.broker.client, match.group(1), opened.session_id)
    # The phone sees the program connect, and its handoff box says so.
    await expect(page.locator("#state-text")).to_have_text(
        "The support program is connected. Waiting for the engineer to join."
    )
    await expect(box).to_have_attribute("data-state", "done")
    await expect(page.locator("#handoff-status")).to_have_text(
        "The support program is connected on your computer."
    )

    # A second computer with the same code is refused: it worked once.
    again = await tabs()
    await again.page.goto(site.url("/"))
    await again.page.fill("#code", _spaced(handoff))
    await again.page.click("#join-submit")
    await expect(again.page.locator("#join-error")).to_contain_text("This code cannot be used")
    await agent.peer.close()
    for tab in (phone, computer, again):
        _clean(tab)


async def test_a_new_handoff_code_replaces_the_shown_one(site: Site, tabs: TabFactory) -> None:
    opened = await open_session(site.broker)
    phone = await tabs(**PHONE)
    page = phone.page
    await page.goto(opened.join_link)
    await page.click("#device-phone-btn")
    await expect(page.locator("#handoff-code")).to_have_text(SPACED_CODE)
    first = (await page.text_content("#handoff-code")) or ""
    await page.click("#handoff-new-btn")
    await expect(page.locator("#handoff-code")).not_to_have_text(first)
    await site.broker.call(
        "POST", "/api/v1/join", status=410, json={"code": first.replace(" ", "")}
    )
    _clean(phone)


async def test_a_phone_may_say_it_is_a_computer(site: Site, tabs: TabFactory) -> None:
    opened = await open_session(site.broker)
    phone = await tabs(**PHONE)
    page = phone.page
    await page.goto(opened.join_link)
    await page.click("#device-override-btn")
    await expect(page.locator("body")).to_have_attribute("data-part", "both")
    await expect(page.locator("#agent-cmd")).to_have_text(COMMAND)
    await expect(page.locator("#handoff-box")).to_be_hidden()
    _clean(phone)


async def test_the_phone_choice_in_spanish(site: Site, tabs: TabFactory) -> None:
    opened = await open_session(site.broker)
    phone = await tabs(locale="es-ES", **PHONE)
    page = phone.page
    await page.goto(opened.join_link)
    await expect(page.locator("#device-title")).to_have_text("Parece un teléfono o una tableta")
    await expect(page.locator("#device-phone-btn")).to_have_text(
        "Usar este teléfono y pasar la parte del ordenador"
    )
    await page.click("#device-phone-btn")
    await expect(page.locator("#handoff-title")).to_have_text(
        "Inicie el programa de asistencia en su ordenador"
    )
    await expect(page.locator("#handoff-expiry")).to_contain_text("El código sirve hasta las")
    _clean(phone)
