"""Fixtures for the customer and security-review page tests.

The real broker (``create_app`` with the shared settings and fake clock) runs under
pytest-aiohttp's ``aiohttp_server`` on a port fixed before the app is built, so the broker's own
origin, which its WebSocket Origin check allows, is exactly the one the browser loads pages from.
Debian's Chromium is driven by Playwright's *async* API in the test's own event loop
(docs: notes on feasibility, items 3 and 8); ``playwright install`` is never needed.

Import the fixtures by name into a test module (``from tests.e2e.conftest_pages import ...``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Response,
    async_playwright,
    expect,
)

from broker.api.routing import Handler
from broker.app import create_app
from broker.appkeys import SERVICES_KEY
from broker.relay.handlers import HUB_KEY
from broker.relay.hub import Hub
from broker.services import Services
from broker.settings import Settings
from broker.types import Role
from tests.conftest import PASSWORD, Broker, FakeClock

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORGANISATION = "Acme Support"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

# One scalable unit for every wait: a slow machine raises RSB_TEST_TIME_SCALE, tests stay as is.
TIME_SCALE = float(os.environ.get("RSB_TEST_TIME_SCALE", "1"))
WAIT_MS = 15_000 * TIME_SCALE
WAIT_S = WAIT_MS / 1000

CASE = {
    "customer_name": "Ana Ruiz",
    "company": "Imprenta Sur",
    "contact": "+34 600 000 001",
    "product": "PressLine 9000",
    "serial_number": "PL9-0001",
    "plan": "premium",
}

ServerFactory = Callable[..., Awaitable[TestServer]]
ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Site:
    """The running broker: its HTTP client helpers (as staff) and the URLs a browser opens."""

    broker: Broker
    server: TestServer
    settings: Settings
    seen: list[str] = field(default_factory=list)

    @property
    def hub(self) -> Hub:
        return self.server.app[HUB_KEY]

    @property
    def services(self) -> Services:
        return self.server.app[SERVICES_KEY]

    @property
    def origin(self) -> str:
        """The broker's own origin (``Settings.base_url``), which its Origin check allows."""
        return self.settings.base_url

    def url(self, path: str) -> str:
        return self.origin + path


@pytest.fixture
async def site(
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    settings: Settings,
    clock: FakeClock,
) -> Site:
    port = _free_port()
    configured = replace(settings, port=port, organisation=ORGANISATION)
    app = create_app(configured, clock=clock)
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Every request line exactly as the broker received it: path plus query string.
        seen.append(request.raw_path)
        return await handler(request)

    app.middlewares.insert(0, record)
    server = await aiohttp_server(app, port=port)
    client = await aiohttp_client(server)
    return Site(Broker(client, clock), server, configured, seen)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Tab:
    """A page in its own browser context, with what it requested and what went wrong."""

    page: Page
    requests: list[Request] = field(default_factory=list)
    socket_urls: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def request_urls(self) -> list[str]:
        return [r.url for r in self.requests]


TabFactory = Callable[..., Awaitable[Tab]]


@pytest.fixture
async def tabs(chromium: Browser) -> AsyncIterator[TabFactory]:
    """Open pages with a given locale and time zone; uncaught errors and CSP reports are kept."""
    contexts: list[BrowserContext] = []

    async def open_tab(locale: str = "en-US", timezone_id: str = "UTC", **device: Any) -> Tab:
        # ``device``: Playwright device emulation (user_agent, viewport, is_mobile, ...).
        options: dict[str, Any] = {"viewport": {"width": 1000, "height": 1400}, **device}
        context = await chromium.new_context(
            locale=locale,
            timezone_id=timezone_id,
            accept_downloads=True,
            # The copy button writes the agent command to the clipboard; tests read it back.
            permissions=["clipboard-read", "clipboard-write"],
            **options,
        )
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        tab = Tab(page)
        page.on("request", lambda request: tab.requests.append(request))
        page.on("websocket", lambda ws: tab.socket_urls.append(ws.url))
        page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))

        def on_console(message: Any) -> None:
            # A refused fetch (410, 404, 409) is logged by Chromium and is expected here; a
            # blocked inline script or style, or an exception, is not.
            if message.type == "error" and "Failed to load resource" not in message.text:
                tab.problems.append(f"console: {message.text}")

        def on_response(response: Response) -> None:
            # ...but a page, script or style that fails to load is a problem: the filter above
            # must not hide a missing module.
            if response.status >= 400 and "/api/" not in response.url:
                tab.problems.append(f"HTTP {response.status}: {response.url}")

        def on_failed(request: Request) -> None:
            if "/api/" not in request.url:
                tab.problems.append(f"failed: {request.url} ({request.failure})")

        page.on("console", on_console)
        page.on("response", on_response)
        page.on("requestfailed", on_failed)
        return tab

    try:
        yield open_tab
    finally:
        for context in contexts:
            await context.close()


@dataclass
class Opened:
    """A case with a session an engineer just created, before the customer joined."""

    case_number: str
    session_id: str
    code: str
    staff: dict[str, str]
    join_link: str = ""

    @property
    def staff_token(self) -> str:
        return self.staff["Authorization"].removeprefix("Bearer ")


async def open_session(
    broker: Broker, user: str = "rita", role: Role = Role.RSE, display: str = "Rita Reyes"
) -> Opened:
    staff = await broker.staff(user, role, display)
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=staff, json=CASE)
    session = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=staff
    )
    return Opened(case["number"], session["id"], session["code"], staff, session["join_link"])


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


async def eventually(predicate: Callable[[], Any], what: str) -> Any:
    """Poll a broker-side condition until it holds or WAIT_S passes; return its value."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT_S:.0f} s: {what}")
        await asyncio.sleep(0.02)


async def dark_pixels(page: Page, box: tuple[int, int, int, int]) -> int:
    """How many canvas pixels in (x, y, w, h) are dark, as the glyphs of the xterm's text."""
    count: int = await page.evaluate(
        """([x, y, w, h]) => {
            const data = document.getElementById('screen').getContext('2d')
                .getImageData(x, y, w, h).data;
            let dark = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i] + data[i + 1] + data[i + 2] < 300) dark += 1;
            }
            return dark;
        }""",
        list(box),
    )
    return count


async def eventually_async(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    """`eventually` for a probe that has to ask the page."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT_S:.0f} s: {what}")
        await asyncio.sleep(0.05)


async def console_signed_in(
    chromium: Browser, site: Site, user: str, shown: str, problems: list[str]
) -> Page:
    """A console tab signed in as ``user``, once the page names ``shown``; page errors go to
    ``problems``."""
    context = await chromium.new_context(viewport={"width": 1440, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    await page.goto(site.url("/console"))
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#whoami-text")).to_have_text(shown)
    return page
