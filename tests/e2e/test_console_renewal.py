"""In Debian's Chromium: the console renews its staff token and hands it to its live socket.

A live viewer socket ends at its token's expiry (issue 11), so the console renews the token at
four fifths of its life (``POST /api/v1/token``, web/js/api.js) and sends the new one on its
socket (``renew``). The broker here runs on the tests' fake clock, in the past of the browser's
real one, so every token the browser sees has long expired by its own clock: the console then
renews at its shortest interval, 5 s, and this test waits for that, with no timing asserted.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from broker.audit.log import row_to_json
from broker.store.records import AuditQuery
from rsb_protocol import messages as msg
from tests.e2e.conftest_pages import Site, chromium, console_signed_in, open_session, site
from tests.relay_peers import ScriptedAgent
from tests.relay_sessions import until

__all__ = ["chromium", "site"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

RENEWAL_WAIT = 30.0
"""Bound on waiting for the console's first renewal (due after 5 s here)."""


async def test_the_console_renews_its_token_and_its_live_socket_takes_it(
    site: Site, chromium: Browser
) -> None:
    broker = site.broker
    opened = await open_session(broker)
    joined = await broker.call("POST", "/api/v1/join", status=200, json={"code": opened.code})
    agent = await ScriptedAgent.join(broker.client, joined["agent_token"], opened.session_id)
    problems: list[str] = []
    page = await console_signed_in(chromium, site, "rita", "Rita Reyes (L2)", problems)
    row = page.locator(f"#sessions-body tr[data-session='{opened.session_id}']")
    await row.get_by_role("button", name="Join").click()
    await agent.peer.wait(lambda: agent.peer.of(msg.ConsentRequest))
    room = site.hub.rooms[opened.session_id]
    viewer = next(iter(room.viewers.values()))
    first = viewer.credential
    assert first is not None
    broker.clock.advance(seconds=60)  # so that a renewed token expires later than the first

    async def renewals() -> list[dict[str, object]]:
        rows = await site.services.audit.search(AuditQuery(actor="rita", limit=1000))
        return [e for e in map(row_to_json, rows) if e["action"] == "auth.token_renewed"]

    async def renewed() -> bool:
        return bool(await renewals()) and viewer.credential != first

    await until(renewed, "the console renewed and its socket took the new token", RENEWAL_WAIT)
    assert viewer.credential is not None and viewer.credential.kid == first.kid
    assert viewer.credential.expires_at > first.expires_at
    assert not viewer.closing, "the socket carries on under the renewed token"
    assert room.viewers.get(viewer.slot) is viewer
    assert not problems, problems
    await page.context.close()
    await agent.peer.close()
