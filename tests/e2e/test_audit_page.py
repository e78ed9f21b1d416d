"""The security-review page in Debian's Chromium against the real broker and its audit log.

The session under review is played through the real relay by scripted peers (join, consent,
control granted and revoked, an escalation, the end), so the timeline the page draws is made of
the events the broker really recorded.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from broker.audit.log import Actor
from broker.types import Role
from rsb_protocol import messages as msg
from tests.conftest import PASSWORD
from tests.e2e.conftest_pages import (
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
from tests.relay_peers import ScriptedAgent, ScriptedViewer, connect

__all__ = ["chromium", "site", "tabs"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

# What the timeline must say, in this order, for the session played by _story().
STORY = [
    ("session.created", "Session created by rita"),
    ("session.customer_joined", "Customer opened the session with the code"),
    ("session.agent_connected", "Customer's computer connected (support program)"),
    ("session.participant_joined", "Rita Reyes (L2) joined and asked to see the screen"),
    ("session.consent_granted", "Consent given: Rita Reyes (L2) may see the screen"),
    (
        "session.consent_requested",
        "Consent asked: may Rita Reyes (L2) control mouse and keyboard? Reason: open the settings",
    ),
    ("session.control_granted", "Control granted to Rita Reyes (L2)"),
    ("session.control_revoked", "Control revoked from Rita Reyes (L2) by the customer (web page)"),
    (
        "session.invited",
        "Escalation: rita invited any L3 engineer. Reason: needs the firmware team",
    ),
    ("session.ended", "Session ended by the customer (web page): problem fixed"),
]


async def _story(site: Site) -> Opened:
    """One session through the relay: join, view, control, revoke, escalate, end."""
    opened = await open_session(site.broker)
    client = site.broker.client
    clock = site.broker.clock
    clock.advance(minutes=2)
    joined = await site.broker.call("POST", "/api/v1/join", status=200, json={"code": opened.code})
    agent = await ScriptedAgent.join(client, joined["agent_token"], opened.session_id)
    clock.advance(minutes=1)
    viewer = await ScriptedViewer.join(client, opened.staff_token, opened.session_id)
    room = site.hub.room(opened.session_id)
    assert room is not None
    view = await agent.peer.wait(lambda: agent.peer.of(msg.ConsentRequest))
    await agent.grant(view[0])
    await eventually(lambda: room.frame_targets, "view granted")
    clock.advance(minutes=5)
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, "open the settings"))
    control = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission.value == "control"]
    )
    await agent.grant(control[0])
    await eventually(lambda: room.controller is not None, "control granted")
    clock.advance(minutes=3)
    customer = await connect(client, "/ws/customer", joined["customer_token"])
    await customer.wait(lambda: customer.of(msg.Welcome))
    await customer.send(msg.ConsentRevoke(viewer.slot, msg.Permission.CONTROL, ""))
    await eventually(lambda: room.controller is None, "control revoked")
    clock.advance(minutes=4)
    await site.broker.call(
        "POST",
        f"/api/v1/sessions/{opened.session_id}/invite",
        status=201,
        headers=opened.staff,
        json={"level": "L3", "reason": "needs the firmware team"},
    )
    clock.advance(minutes=10)
    await customer.send(msg.End(msg.Role.CUSTOMER, "problem fixed"))
    assert await viewer.peer.closed() == 4103
    for peer in (agent.peer, customer):
        await peer.close()
    return opened


async def _sign_in(tab: Tab, site: Site, user: str) -> Page:
    page = tab.page
    await page.goto(site.url("/audit"))
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    return page


async def test_security_searches_a_case_and_reads_the_session_timeline(
    site: Site, tabs: TabFactory
) -> None:
    opened = await _story(site)
    other = await open_session(site.broker, "otto", Role.DESK, "Otto Desk")
    await site.broker.add_user("sam", Role.SECURITY, "Sam Secure")
    tab = await tabs()
    page = await _sign_in(tab, site, "sam")
    await expect(page.locator("#whoami-text")).to_have_text(
        "Signed in as Sam Secure (sam, security)"
    )
    await expect(page.locator("#verify-status")).to_have_attribute("data-state", "intact")

    await page.fill("#f-case", opened.case_number)
    await page.click("#search-btn")
    rows = page.locator("#results-body tr")
    await expect(rows.first).to_be_visible()
    cases = await rows.locator("td:nth-child(5)").all_text_contents()
    assert set(cases) == {opened.case_number}
    actions = await rows.evaluate_all("rows => rows.map((r) => r.dataset.action)")
    assert "case.created" in actions and "session.ended" in actions
    assert other.case_number not in await page.locator("#results").inner_text()

    # A session id in the results opens that session's timeline.
    await rows.locator(f"button:text-is('{opened.session_id}')").first.click()
    items = page.locator("#timeline li")
    await expect(items).to_have_count(len(STORY))
    assert await items.evaluate_all("items => items.map((i) => i.dataset.action)") == [
        action for action, _ in STORY
    ]
    assert await items.locator(".what").all_text_contents() == [text for _, text in STORY]
    await expect(page.locator("#timeline-summary")).to_have_text(
        f"{len(STORY)} events for session {opened.session_id}, oldest first."
    )

    # Search by actor: the desk user's own events only.
    await page.click("#clear-btn")
    await page.fill("#f-actor", "otto")
    await page.click("#search-btn")
    await expect(page.locator("#search-summary")).to_contain_text("events shown.")
    actors = await page.locator("#results-body td:nth-child(3)").all_text_contents()
    assert actors and set(actors) == {"otto (desk)"}
    await page.click("#clear-btn")
    await page.fill("#f-case", opened.case_number)
    await page.click("#search-btn")
    await expect(rows.first).to_be_visible()
    await screenshot(page, "audit.png")
    assert tab.problems == []


async def test_search_by_time_window(site: Site, tabs: TabFactory) -> None:
    first = await open_session(site.broker)
    site.broker.clock.advance(hours=2)
    second = await open_session(site.broker, "otto", Role.DESK, "Otto Desk")
    await site.broker.add_user("sam", Role.SECURITY, "Sam Secure")
    tab = await tabs()
    page = await _sign_in(tab, site, "sam")
    await expect(page.locator("#verify-status")).to_have_attribute("data-state", "intact")
    # The fake clock started at 10:00 UTC; the browser runs in UTC too.
    await page.fill("#f-since", "2026-11-23T11:00:00")
    await page.click("#search-btn")
    await expect(page.locator("#results-body tr").first).to_be_visible()
    cases = await page.locator("#results-body td:nth-child(5)").all_text_contents()
    assert second.case_number in cases and first.case_number not in cases
    await page.fill("#f-since", "")
    await page.fill("#f-until", "2026-11-23T11:00:00")
    await page.click("#search-btn")
    await expect(page.locator("#results-body tr").first).to_be_visible()
    cases = await page.locator("#results-body td:nth-child(5)").all_text_contents()
    assert first.case_number in cases and second.case_number not in cases
    assert tab.problems == []


async def test_a_desk_user_is_refused(site: Site, tabs: TabFactory) -> None:
    await open_session(site.broker)
    await site.broker.add_user("dora", Role.DESK, "Dora Desk")
    tab = await tabs()
    page = await _sign_in(tab, site, "dora")
    await expect(page.locator("#denied-view")).to_be_visible()
    await expect(page.locator("#denied-text")).to_contain_text("(role: desk) is not allowed")
    await expect(page.locator("#review-view")).to_be_hidden()
    # The broker refused it: the page shows no event it could not have been given.
    assert await page.locator("#results-body tr").count() == 0
    assert "/api/v1/audit/verify" in site.seen
    assert tab.problems == []


async def test_verify_detects_a_tampered_database(
    site: Site, tabs: TabFactory, db_path: Path
) -> None:
    await open_session(site.broker)
    await site.broker.add_user("ada", Role.ADMIN, "Ada Admin")
    tab = await tabs()
    page = await _sign_in(tab, site, "ada")
    status = page.locator("#verify-status")
    await expect(status).to_have_attribute("data-state", "intact")
    await expect(status).to_contain_text("Chain intact")

    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
        conn.execute("UPDATE audit_events SET details = '{\"x\":1}' WHERE seq = 3")
    await page.click("#verify-btn")
    await expect(status).to_have_attribute("data-state", "broken")
    await expect(status).to_contain_text("Chain broken at event #3")
    assert tab.problems == []


async def test_export_downloads_json_lines(site: Site, tabs: TabFactory, tmp_path: Path) -> None:
    opened = await open_session(site.broker)
    await site.broker.add_user("sam", Role.SECURITY, "Sam Secure")
    tab = await tabs()
    page = await _sign_in(tab, site, "sam")
    await expect(page.locator("#verify-status")).to_have_attribute("data-state", "intact")
    async with page.expect_download() as info:
        await page.click("#export-btn")
    download = await info.value
    assert download.suggested_filename.endswith(".jsonl")
    saved = tmp_path / "export.jsonl"
    await download.save_as(saved)
    events = [json.loads(line) for line in saved.read_text().splitlines()]
    assert events[-1]["action"] == "audit.exported" and events[-1]["actor"] == "sam"
    assert {"case.created", "session.created"} <= {e["action"] for e in events}
    assert all(e["case"] == opened.case_number for e in events if e["case"])
    await expect(page.locator("#export-status")).to_have_text(f"Exported {len(events)} events.")
    # The token went in a header: no request line carried it.
    assert not [line for line in site.seen if "eyJ" in line or "token" in line.lower()]
    assert tab.problems == []


async def test_results_page_on_and_an_expired_sign_in_ends_the_review(
    site: Site, tabs: TabFactory
) -> None:
    opened = await open_session(site.broker)
    contact = Actor("rita", "rse", "127.0.0.1")
    async with site.services.store.transaction():
        for n in range(250):
            await site.services.audit.record(
                contact,
                "case.contact_attempt",
                at=site.broker.clock(),
                case_number=opened.case_number,
                details={"channel": "phone", "n": n},
            )
    await site.broker.add_user("sam", Role.SECURITY, "Sam Secure")
    tab = await tabs()
    page = await _sign_in(tab, site, "sam")
    await page.fill("#f-case", opened.case_number)
    await page.click("#search-btn")
    rows = page.locator("#results-body tr")
    await expect(rows).to_have_count(200)
    await page.click("#more-btn")
    total = 250 + 4  # the contact attempts, and the case and session being opened
    await expect(rows).to_have_count(total)
    await expect(page.locator("#search-summary")).to_have_text(f"{total} events shown.")
    await expect(page.locator("#more-btn")).to_be_hidden()
    seqs = await rows.evaluate_all("rows => rows.map((r) => Number(r.dataset.seq))")
    assert seqs == sorted(set(seqs))

    # Staff tokens last an hour: past that, the broker says 401 and the page signs out.
    site.broker.clock.advance(hours=2)
    await page.click("#verify-btn")
    await expect(page.locator("#login-view")).to_be_visible()
    await expect(page.locator("#login-error")).to_have_text(
        "Your sign-in has expired or was revoked. Please sign in again."
    )
    await expect(page.locator("#review-view")).to_be_hidden()
    assert await page.locator("#results-body tr").count() == 0
    assert tab.problems == []
