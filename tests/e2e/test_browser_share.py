"""Zero-install: the customer page shares its screen from Chromium, and the console sees it.

The customer page runs in a headful Chromium on an Xvfb display that shows a known picture (a
solid root colour, a Tk window of four colour blocks, an xterm), launched with
``--auto-select-desktop-capture-source=Entire screen`` so that ``getDisplayMedia`` picks the
whole screen without a picker (and without ``--use-fake-ui-for-media-stream``, which makes
desktop capture fail: notes/feasibility-wave2.md, section C). The customer joins with the
code, clicks "Share my screen from this browser", and answers the page's own consent question
(engineer, level, case, read-back words); the console, signed in as the engineer in another
browser, then draws the colour blocks, compared by pixels with a tolerance for JPEG.

What the broker relays is taken from both sockets (every binary frame the page sent on
/ws/agent and the console received on /ws/viewer) and searched for the images the page
encoded, which a test-side wrapper of ``OffscreenCanvas.convertToBlob`` records in the page:
none of them, nor any 64-byte piece of one, crosses the broker in the clear. The console says
the session is view only and offers no control (the broker's refusal itself is
``tests/integration/test_browser_source.py``). A short typing workload in the xterm reports
the page's encode time per update and the bytes per second it sent.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, WebSocket, async_playwright, expect

from broker.types import Role
from tests.e2e.conftest_pages import (
    CHROMIUM,
    WAIT_MS,
    WAIT_S,
    Site,
    chromium,
    console_signed_in,
    dark_pixels,
    eventually,
    eventually_async,
    open_session,
    site,
)
from tests.e2e.story_fixtures import BLOCKS, ROOT_COLOUR, StoryDisplay, block_centre, story_display
from tests.integration.conftest import xvfb

__all__ = ["chromium", "site", "story_display", "xvfb"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

TOLERANCE = 24
"""Per-channel difference allowed between a canvas pixel and the colour drawn on X (JPEG)."""
WINDOW = (0, 330, 740, 470)
"""Where the customer's Chromium window sits (x, y, w, h): clear of the colour blocks."""
ROOT_POINTS = ((1200, 760), (1200, 60))
"""Screen pixels no window covers: the root colour."""
PIECE = 64
VIEW_ONLY = "Shared from the browser: view only \u2014 ask the customer to install the agent"
TYPED = "the quick brown fox jumps over the lazy dog 0123456789"
LINE = (300, 3, 60, 11)
"""Where the end of the typed line is drawn in the xterm (7 pixels per character)."""

SHARE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--ozone-platform=x11",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--auto-select-desktop-capture-source=Entire screen",
    f"--window-position={WINDOW[0]},{WINDOW[1]}",
    f"--window-size={WINDOW[2]},{WINDOW[3]}",
]

# Test-side only: keep a copy of every image the page encodes, to look for it on the wire.
RECORD_ENCODED = """
(() => {
  const original = OffscreenCanvas.prototype.convertToBlob;
  const encoded = [];
  globalThis.__rsbEncoded = encoded;
  OffscreenCanvas.prototype.convertToBlob = async function (options) {
    const blob = await original.call(this, options);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    if (encoded.length < 300) {
      let binary = "";
      for (let i = 0; i < bytes.length; i += 0x8000) {
        binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      }
      encoded.push(btoa(binary));
    }
    return new Blob([bytes], { type: blob.type });
  };
})();
"""


class Wire:
    """Every binary frame on one page's WebSockets, in both directions."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.urls: list[str] = []

    def watch(self, ws: WebSocket) -> None:
        self.urls.append(ws.url)
        ws.on("framesent", self._keep)
        ws.on("framereceived", self._keep)

    def _keep(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            self.frames.append(payload)


@pytest.fixture
async def customer_browser(story_display: StoryDisplay) -> AsyncIterator[Browser]:
    """A headful Chromium on the story's X display: what it captures is that screen."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=False,
            args=SHARE_ARGS,
            env={**os.environ, "DISPLAY": story_display.x.display},
        )
        try:
            yield browser
        finally:
            await browser.close()


async def _canvas_pixel(page: Page, x: int, y: int) -> tuple[int, int, int]:
    data = await page.evaluate(
        "([x, y]) => Array.from("
        "document.getElementById('screen').getContext('2d').getImageData(x, y, 1, 1).data)",
        [x, y],
    )
    return data[0], data[1], data[2]


def _expected() -> dict[tuple[int, int], tuple[int, int, int]]:
    expected = {block_centre(col, row): rgb for col, row, rgb in BLOCKS}
    expected.update({point: ROOT_COLOUR for point in ROOT_POINTS})
    return expected


async def _wait_for_pattern(console: Page) -> None:
    expected = _expected()
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        seen = {point: await _canvas_pixel(console, *point) for point in expected}
        if all(
            all(abs(p - q) <= TOLERANCE for p, q in zip(seen[point], rgb, strict=True))
            for point, rgb in expected.items()
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            details = await console.get_attribute("#s-readout", "title")
            raise AssertionError(f"the canvas never showed the pattern: {seen}; {details}")
        await asyncio.sleep(0.05)


async def _share_stats(page: Page) -> dict[str, Any]:
    stats: dict[str, Any] = await page.evaluate(
        'async () => (await import("/static/js/customer-share.js")).shareStats()'
    )
    return stats


async def _type_in_xterm(display: StoryDisplay, text: str) -> None:
    """Type with XTEST into the xterm, focused first (Chromium took the focus when it opened),
    without blocking the event loop the broker runs in."""
    window = str(display.xterm.window_id)
    for args in (
        ["mousemove", "200", "150"],
        ["windowfocus", window],
        ["type", "--delay", "110", text],
    ):
        proc = await asyncio.create_subprocess_exec("xdotool", *args, env=display.x.env)
        assert await asyncio.wait_for(proc.wait(), WAIT_S * 2) == 0


async def _quiet(page: Page, still: float = 1.5) -> None:
    """Wait until the page has sent nothing for ``still`` seconds (its lossless refresh done)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    last, since = -1, asyncio.get_running_loop().time()
    while True:
        count = (await _share_stats(page))["updates"]
        now = asyncio.get_running_loop().time()
        if count != last:
            last, since = count, now
        elif now - since >= still:
            return
        if now > deadline:
            raise AssertionError("the shared screen never came to rest")
        await asyncio.sleep(0.1)


async def test_the_customer_shares_from_chromium_and_the_console_sees_ciphertext_only(
    site: Site,
    chromium: Browser,
    customer_browser: Browser,
    story_display: StoryDisplay,
) -> None:
    opened = await open_session(site.broker, "rita", Role.RSE, "Rita Reyes")
    problems: list[str] = []
    console = await console_signed_in(chromium, site, "rita", "Rita Reyes (L2)", problems)
    console_wire = Wire()
    console.on("websocket", console_wire.watch)

    # The customer joins with the code and offers to share from the browser.
    context = await customer_browser.new_context(no_viewport=True, locale="en-US")
    await context.add_init_script(RECORD_ENCODED)
    customer = await context.new_page()
    customer.set_default_timeout(WAIT_MS)
    customer.on("pageerror", lambda exc: problems.append(f"customer page error: {exc}"))
    page_wire = Wire()
    customer.on("websocket", page_wire.watch)
    await customer.goto(site.url("/"))
    await expect(customer.locator("body")).to_have_attribute("data-ready", "true")
    await customer.fill("#code", opened.code)
    await customer.click("#join-submit")
    await expect(customer.locator("#case-number")).to_have_text(opened.case_number)
    await customer.click("#share-btn")
    await expect(customer.locator("#share-status")).to_have_attribute("data-state", "ready")

    # The engineer joins; the page itself asks the customer, naming engineer, level and case.
    await console.locator(f"#sessions-body tr[data-session='{opened.session_id}'] button").click()
    question = customer.locator(".share-question")
    await expect(question).to_contain_text("May Rita Reyes see your screen?")
    await expect(question).to_contain_text(f"for case {opened.case_number} of Acme Support")
    await expect(question).to_contain_text("remote support engineer (level 2)")
    words = await question.locator(".share-ask-words").get_attribute("data-words")
    assert words is not None and len(words.split()) == 4
    await expect(console.locator("#rb-words")).to_have_text(words)
    # The question follows the page's language switch, as every text the customer reads.
    await customer.click(".lang-btn[data-lang='es']")
    await expect(question).to_contain_text("¿Puede Rita Reyes ver su pantalla?")
    await expect(question.locator(".share-yes")).to_have_text("Sí, mostrar mi pantalla")
    await customer.click(".lang-btn[data-lang='en']")
    # Nothing leaves the page before the customer's yes: no capture, not one binary frame.
    await expect(customer.locator("#share-status")).to_have_attribute("data-state", "ready")
    assert page_wire.frames == [] and console_wire.frames == [], "a frame before consent"
    await question.locator(".share-yes").click()

    # The console draws the customer's X screen: the colour blocks and the root colour.
    await expect(console.locator("#s-status")).to_have_attribute("data-status", "observing")
    await _wait_for_pattern(console)
    await expect(customer.locator("#share-status")).to_have_attribute("data-state", "sharing")
    await expect(customer.locator("#share-status")).to_contain_text("Rita Reyes")

    # View only: the console says so and offers no control.
    await expect(console.locator("#s-control")).to_have_attribute("data-control", "browser")
    await expect(console.locator("#s-control")).to_contain_text(VIEW_ONLY)
    await expect(console.locator("#control-btn")).to_be_disabled()
    await expect(console.locator("#people li[data-slot='0']")).to_contain_text(
        "customer's browser, view only"
    )

    # A typing workload, measured from a quiet screen: the page's encode time per update and
    # the bytes per second it sends (reported, not asserted: the machine sets the numbers).
    await _quiet(customer)
    before = await _share_stats(customer)
    started = asyncio.get_running_loop().time()
    await _type_in_xterm(story_display, TYPED + "\n")
    await asyncio.sleep(0.3)  # the last keystrokes' updates leave the page
    elapsed = asyncio.get_running_loop().time() - started
    after = await _share_stats(customer)
    updates = after["updates"] - before["updates"]
    assert updates > 0, (before, after)
    encode = after["encodeMs"][-updates:]
    print(
        f"\nbrowser share, typing {len(TYPED)} characters in {elapsed:.1f} s: {updates} updates, "
        f"{(after['bytes'] - before['bytes']) / elapsed / 1024:.1f} KiB/s sent, encode ms per "
        f"update median {statistics.median(encode):.1f} (max {max(encode):.1f}), grab ms median "
        f"{statistics.median(after['grabMs'][-updates:]):.1f}, seal ms median "
        f"{statistics.median(after['sealMs'][-updates:]):.1f}, bytes per update median "
        f"{statistics.median(after['sizes'][-updates:]):.0f}"
    )
    await eventually(lambda: TYPED in story_display.typed_text(), "the line typed in the xterm")
    # The typed line is drawn on the console's canvas (dark glyphs on the xterm's first line).
    await eventually_async(lambda: dark_pixels(console, LINE), "the echo on the console")

    # Nothing the page encoded crossed the broker in the clear, not even a piece of it.
    images = [
        base64.b64decode(item) for item in await customer.evaluate("globalThis.__rsbEncoded ?? []")
    ]
    assert images, "the page encoded no image"
    relayed = page_wire.frames + console_wire.frames
    assert sum(map(len, console_wire.frames)) > max(map(len, images))
    for image in images:
        pieces = {image[:PIECE], image[len(image) // 2 : len(image) // 2 + PIECE], image[-PIECE:]}
        for frame in relayed:
            assert image not in frame
            assert not any(piece in frame for piece in pieces if len(piece) == PIECE)
    # The agent token went only in the subprotocol.
    agent_urls = [url for url in page_wire.urls if url.endswith("/ws/agent")]
    assert agent_urls == [site.url("/ws/agent").replace("http", "ws", 1)]
    assert problems == []
