"""In Debian's Chromium against the real broker: the console's invitations and control reason,
and the customer page's view of what is asked (with the engineer's reason) and its comment.

Scripted peers (``tests/relay_peers.py``) play the agent and the other engineers through the
real relay, so what the pages show is what the broker decided and sent.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from broker.audit.log import row_to_json
from broker.store.records import AuditQuery
from broker.types import Role
from rsb_protocol import messages as msg
from tests.e2e.conftest_pages import (
    CASE,
    Opened,
    Site,
    TabFactory,
    chromium,
    console_signed_in,
    open_session,
    site,
    tabs,
)
from tests.e2e.test_customer_page import _live_session
from tests.relay_peers import ScriptedAgent, ScriptedViewer
from tests.relay_sessions import until

__all__ = ["chromium", "site", "tabs"]  # fixtures, imported by name

pytestmark = pytest.mark.browser


async def _actions(site: Site, session_id: str) -> list[tuple[str, str, dict[str, object]]]:
    rows = await site.services.audit.search(AuditQuery(session_id=session_id, limit=1000))
    return [(e["action"], e["actor"], e["details"]) for e in map(row_to_json, rows)]


_console = console_signed_in


async def _another(site: Site, first: Opened) -> Opened:
    """One more case and session opened by the same engineer."""
    case = await site.broker.call(
        "POST", "/api/v1/cases", status=201, headers=first.staff, json=CASE
    )
    session = await site.broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=first.staff
    )
    return Opened(case["number"], session["id"], session["code"], first.staff)


async def _invite(site: Site, opened: Opened, **target: str) -> None:
    await site.broker.call(
        "POST",
        f"/api/v1/sessions/{opened.session_id}/invite",
        status=201,
        headers=opened.staff,
        json=target,
    )


async def test_the_console_shows_invitations_and_joining_takes_the_session_over(
    site: Site, chromium: Browser
) -> None:
    broker = site.broker
    by_name = await open_session(broker)  # rita (L2) opens three sessions
    by_level = await _another(site, by_name)
    for_desk = await _another(site, by_name)
    await broker.add_user("eve", Role.ENGINEERING, "Eve Engel")
    await _invite(site, by_name, user="eve", reason="firmware crash <b>dump</b> needs you")
    await _invite(site, by_level, level="L3", reason="board revision question")
    await _invite(site, for_desk, level="L1", reason="licence reset")
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": by_name.code})
    agent = await ScriptedAgent.join(broker.client, joined["agent_token"], by_name.session_id)

    problems: list[str] = []
    page = await _console(chromium, site, "eve", "Eve Engel (L3)", problems)
    row = page.locator(f"#sessions-body tr[data-session='{by_name.session_id}']")
    await expect(row).to_have_attribute("data-invited", "user")
    mine = row.locator(".invitation.mine")
    await expect(mine).to_have_count(1)
    await expect(mine).to_contain_text("invited: you")
    # The reason is shown as text: markup in it stays characters.
    await expect(mine.locator(".reason")).to_have_text(
        " \u2013 firmware crash <b>dump</b> needs you"
    )
    await expect(mine.locator("b")).to_have_count(0)
    await expect(mine).to_contain_text("by rita")
    await expect(row.locator("td.holder")).to_have_text("Rita Reyes (L2)")
    level_row = page.locator(f"#sessions-body tr[data-session='{by_level.session_id}']")
    await expect(level_row).to_have_attribute("data-invited", "level")
    await expect(level_row.locator(".invitation.mine")).to_have_text(
        "invited: your level (L3) \u2013 board revision question" + await _by(level_row)
    )
    desk_row = page.locator(f"#sessions-body tr[data-session='{for_desk.session_id}']")
    await expect(desk_row).to_have_attribute("data-invited", "")
    await expect(desk_row.locator(".invitation.mine")).to_have_count(0)
    await expect(desk_row.locator(".invitation")).to_contain_text("invited: any L1")

    # Joining from the queue accepts the invitation and hands the session over.
    await row.get_by_role("button", name="Join").click()
    await expect(page.locator("#session-view")).to_be_visible()
    view = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.engineer_name == "Eve Engel"]
    )
    await agent.grant(view[0])
    await expect(page.locator("#s-status")).to_have_attribute("data-status", "observing")

    # The console's control request carries the reason typed next to the button.
    await page.fill("#control-reason", "read the crash log\non the panel")
    await page.click("#control-btn")
    asked = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission.value == "control"]
    )
    assert asked[0].reason == "read the crash log on the panel"
    await expect(page.locator("#notices")).to_contain_text("control requested: read the crash log")
    actions = await _actions(site, by_name.session_id)
    accepted = [
        (who, d["target_user"]) for a, who, d in actions if a == "session.invitation_accepted"
    ]
    assert accepted == [("eve", "eve")]
    session = await site.services.sessions.get(by_name.session_id)
    assert (session.holder_user, session.holder_display) == ("eve", "Eve Engel")

    await page.click("#leave-btn")
    await expect(page.locator("#queue-view")).to_be_visible()
    # Eve left and nobody else is connected: the row names nobody, and the invitation is gone.
    await expect(row.locator("td.holder")).to_have_text("nobody")
    await expect(row.locator(".invitation")).to_have_count(0)
    await agent.peer.close()
    assert problems == []


async def _by(row: object) -> str:
    """The "(by rita, 10:00)" tail, whose clock format is the browser's."""
    locator = row.locator(".invitation.mine .hint")  # type: ignore[attr-defined]
    text: str = await locator.text_content() or ""
    return text


async def test_the_customer_page_shows_the_reason_and_sends_a_comment(
    site: Site, tabs: TabFactory
) -> None:
    tab = await tabs()
    page = tab.page
    opened, agent, viewer = await _live_session(site, tab)
    asking = page.locator("#asking")
    await expect(asking).to_be_hidden()

    # Free text from staff: markup stays text, control and bidi characters are gone.
    typed = "check the <img src=x onerror=alert(1)> tray\u202e\nsettings"
    await viewer.peer.send(msg.ControlRequest("req-c", viewer.slot, typed))
    item = asking.locator("li[data-permission='control']")
    await expect(item.locator(".what")).to_have_text(
        "Rita Reyes (L2) asks to control your mouse and keyboard."
    )
    await expect(item.locator(".reason")).to_have_text(
        "Reason given: check the <img src=x onerror=alert(1)> tray settings"
    )
    await expect(item.locator("img")).to_have_count(0)
    await page.click(".lang-btn[data-lang=es]")
    await expect(item.locator(".reason")).to_have_text(
        "Motivo indicado: check the <img src=x onerror=alert(1)> tray settings"
    )
    await page.click(".lang-btn[data-lang=en]")

    # The agent says no: the request leaves the page.
    control = await agent.peer.wait(
        lambda: [r for r in agent.peer.of(msg.ConsentRequest) if r.permission.value == "control"]
    )
    await agent.peer.send(
        msg.ConsentRefuse(control[0].request_id, viewer.slot, control[0].permission)
    )
    await expect(asking).to_be_hidden()

    # Ended: the page asks whether it is solved, and sends the comment with the answer.
    await page.click("#end-btn")
    await expect(page.locator("#feedback")).to_be_visible()
    await page.fill("#feedback-comment", "Tray 2 still squeaks <b>a bit</b>")
    await page.click("#not-solved-btn")
    await expect(page.locator("#feedback-result")).to_contain_text(
        f"Case {opened.case_number} stays open"
    )
    feedback = await site.services.cases.feedback(opened.case_number)
    assert [(f.solved, f.comment) for f in feedback] == [
        (False, "Tray 2 still squeaks <b>a bit</b>")
    ]
    answered = [
        (who, d)
        for a, who, d in await _actions(site, opened.session_id)
        if a == "case.customer_answered"
    ]
    assert answered == [
        (
            f"customer:{opened.session_id}",
            {"solved": False, "comment": "Tray 2 still squeaks <b>a bit</b>"},
        )
    ]
    await agent.peer.close()
    await viewer.peer.close()
    assert tab.problems == []


async def test_the_page_names_the_engineers_here_not_one_who_left(
    site: Site, tabs: TabFactory
) -> None:
    tab = await tabs()
    page = tab.page
    opened, agent, viewer = await _live_session(site, tab)
    await expect(page.locator("#engineer")).to_have_text(
        "Rita Reyes, remote support engineer (level 2)"
    )
    eve_headers = await site.broker.staff("eve", Role.ENGINEERING, "Eve Engel")
    await _invite(site, opened, user="eve", reason="firmware")
    eve = await ScriptedViewer.join(
        site.broker.client, eve_headers["Authorization"].removeprefix("Bearer "), opened.session_id
    )
    await expect(page.locator("#engineer")).to_have_text(
        "Rita Reyes, remote support engineer (level 2) and Eve Engel, design engineering (level 3)"
    )
    await viewer.peer.close()
    await expect(page.locator("#engineer")).to_have_text("Eve Engel, design engineering (level 3)")

    # The status check names the holder too: Eve, to whom the session was handed.
    async def eve_holds() -> bool:
        return (await site.services.sessions.get(opened.session_id)).holder_user == "eve"

    await until(eve_holds, "the session handed over to eve")
    await page.fill("#check-case", opened.case_number)
    await page.fill("#check-serial", "PL9-0001")
    await page.click("#check-submit")
    await expect(page.locator("#check-sessions tbody tr").first).to_contain_text("Eve Engel")
    await eve.peer.close()
    await agent.peer.close()
    assert tab.problems == []
