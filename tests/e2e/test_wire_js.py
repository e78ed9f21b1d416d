"""The browser reads the protocol's constants as Python defines them, running ``wire.js``.

``tests/unit/test_wire_js.py`` holds the file to what the generator writes; this runs it in
Chromium, the way the pages load it, and holds the one function it carries (``afterClose``,
the twin of ``rsb_protocol.close_codes.after_close``) to the Python one on every code.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from rsb_protocol.close_codes import CLOSE_CODE_EXPLANATIONS, CloseCode, after_close
from rsb_protocol.framing import CUSTOMER_SLOT, FrameType
from tests.e2e.conftest_pages import Site, TabFactory, chromium, site, tabs

__all__ = ["chromium", "site", "tabs"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

CODES: list[int | None] = [None, *range(999, 1016), 2999, 3000, *range(3999, 5001)]


async def test_the_pages_close_verdicts_and_constants_are_the_protocols(
    site: Site, tabs: TabFactory
) -> None:
    tab = await tabs()
    await tab.page.goto(site.url("/"))
    await expect(tab.page.locator("body")).to_have_attribute("data-ready", "true")
    seen = await tab.page.evaluate(
        """async (codes) => {
            const wire = await import("/static/js/wire.js");
            return {
                verdicts: codes.map((code) => wire.afterClose(code)),
                ended: wire.CloseCode.SESSION_ENDED,
                explained: wire.CLOSE_CODE_EXPLANATIONS[wire.CloseCode.SESSION_ENDED],
                customer: wire.CUSTOMER_SLOT,
                chat: wire.FrameType.CHAT,
            };
        }""",
        CODES,
    )
    assert seen["verdicts"] == [after_close(code).value for code in CODES]
    assert seen["ended"] == CloseCode.SESSION_ENDED
    assert seen["explained"] == CLOSE_CODE_EXPLANATIONS[CloseCode.SESSION_ENDED]
    assert (seen["customer"], seen["chat"]) == (CUSTOMER_SLOT, FrameType.CHAT)
    assert tab.problems == [], tab.problems
