"""The console's cases in Debian's Chromium: the broker's SLA view, its plans and severities, the
customer's answers, a severity change and a cancellation, against the real broker.

The broker runs on the tests' fake clock (23 Nov 2026), the browser on the machine's real one.
A console that judged deadlines by the browser's clock, as it did before issue 11, shows the
wrong thing here whichever way the two clocks differ; only the broker's view is right.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from broker.settings import Settings
from broker.types import Role
from tests.conftest import TEST_SETTINGS
from tests.e2e.conftest_pages import (
    CASE,
    Site,
    chromium,
    console_signed_in,
    screenshot,
    site,
)

__all__ = ["chromium", "site"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

PLANS = {
    # Names no console could have hard-coded: the list must come from the broker.
    "gold": {"coverage": "24x7", "response_hours": {"1": 0.5, "2": 1, "3": 4, "4": 8}},
    "office": {
        "coverage": "business",
        "timezone": "America/New_York",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "opens": "08:00",
        "closes": "18:00",
        "response_hours": {"1": 2, "2": 4, "3": 8, "4": 16},
    },
}


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings.from_mapping({"db": str(db_path), "plans": PLANS, **TEST_SETTINGS})


async def _console(chromium: Browser, site: Site, problems: list[str]) -> Page:
    return await console_signed_in(chromium, site, "rita", "Rita Reyes (L2)", problems)


async def test_console_shows_the_brokers_sla_plans_and_answers(
    site: Site, chromium: Browser
) -> None:
    broker = site.broker
    staff = await broker.staff("rita", Role.RSE, "Rita Reyes")
    answered = await broker.call(
        "POST",
        "/api/v1/cases",
        status=201,
        headers=staff,
        json={**CASE, "plan": "gold", "severity": 1},
    )
    session = await broker.call(
        "POST", f"/api/v1/cases/{answered['number']}/sessions", status=201, headers=staff
    )  # answered at once: its first response is on time
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": session["code"]})
    customer = {"Authorization": f"Bearer {joined['customer_token']}"}
    await broker.call(
        "POST",
        "/api/v1/customer/confirm",
        status=200,
        headers=customer,
        json={"solved": False, "comment": "the tray still <b>jams</b>"},
    )
    waiting = await broker.call(
        "POST",
        "/api/v1/cases",
        status=201,
        headers=staff,
        json={**CASE, "customer_name": "Bo Lind", "plan": "gold", "severity": 1},
    )
    broker.clock.advance(hours=2)  # both deadlines (30 min) are long past

    problems: list[str] = []
    page = await _console(chromium, site, problems)

    # The severity and plan choices are the broker's, in the support plans' words.
    severity = page.locator("#case-severity option")
    await expect(severity).to_have_text(
        ["1 - catastrophic", "2 - severe", "3 - moderate", "4 - low"]
    )
    await expect(page.locator("#case-severity")).to_have_value("3")
    await expect(page.locator("#case-plan option")).to_have_text(
        ["gold (24x7)", "office (business hours, America/New_York)"]
    )

    # The answered case is not red although its due time passed; the unanswered one is.
    on_time = page.locator(f'#cases-body tr[data-case="{answered["number"]}"] td').nth(1)
    late = page.locator(f'#cases-body tr[data-case="{waiting["number"]}"] td').nth(1)
    await expect(on_time).to_have_attribute("data-sla", "met")
    await expect(on_time).to_contain_text("answered on time")
    await expect(on_time).not_to_have_class("overdue")
    await expect(late).to_have_attribute("data-sla", "overdue")
    await expect(late).to_contain_text("overdue by 90 min")
    await expect(late).to_have_class("overdue")
    badge = page.locator(f'#cases-body tr[data-case="{waiting["number"]}"] .sev')
    await expect(badge).to_have_attribute("title", "1 - catastrophic")
    # The session queue shows the same broker view for the session's case.
    queued = page.locator(f'#sessions-body tr[data-session="{session["id"]}"] td').nth(1)
    await expect(queued).to_have_attribute("data-sla", "met")

    # The case detail shows the customer's answer with their comment, as text.
    await page.locator(f'#cases-body tr[data-case="{answered["number"]}"] button.link').click()
    await expect(page.locator("#d-number")).to_have_text(answered["number"])
    await expect(page.locator("#d-feedback li")).to_have_count(1)
    await expect(page.locator("#d-feedback li")).to_contain_text(
        "not solved the tray still <b>jams</b>"
    )
    await expect(page.locator("#d-feedback b")).to_have_count(0)

    # A severity change through the form: audited, the deadline recomputed by the broker.
    await page.select_option("#terms-severity", "2")
    await page.fill("#terms-reason", "production runs, degraded")
    await page.click("#terms-btn")
    await expect(page.locator("#d-severity")).to_have_text("2 - severe")
    case = await broker.services.cases.get(answered["number"])
    assert case.severity == 2 and case.first_response_met is True
    await screenshot(page, "console-case-detail.png")

    # Cancelling the unanswered case: with a reason, its SLA verdict kept, no forms left.
    await page.locator(f'#cases-body tr[data-case="{waiting["number"]}"] button.link').click()
    await expect(page.locator("#d-number")).to_have_text(waiting["number"])
    await page.fill("#cancel-reason", "opened twice by mistake")
    await page.click("#cancel-btn")
    await expect(page.locator("#d-status")).to_have_text("cancelled")
    await expect(page.locator("#d-cancelled")).to_contain_text("by rita: opened twice by mistake")
    await expect(page.locator("#d-sla")).to_have_attribute("data-sla", "late")
    await expect(page.locator("#cancel-form")).to_be_hidden()
    await expect(page.locator(f'#cases-body tr[data-case="{waiting["number"]}"]')).to_have_count(0)
    cancelled = await broker.services.cases.get(waiting["number"])
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "opened twice by mistake")
    assert problems == []
