"""The customer page offers the agent for the customer's platform, in Debian's Chromium.

The real broker serves a folder with agent files for three platforms, one of them signed;
the page must pick the file for the browser's system (Linux here; Windows and an iPhone by
their user agents), show its SHA-256 and signature as the broker computed them, and the
download must be those bytes. English and Spanish.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Browser, expect

from broker import release
from broker.settings import Settings
from tests.conftest import TEST_SETTINGS
from tests.e2e.conftest_pages import (
    WAIT_MS,
    Site,
    Tab,
    TabFactory,
    chromium,
    site,
    tabs,
)

__all__ = ["chromium", "site", "tabs"]  # fixtures, imported by name

pytestmark = pytest.mark.browser

FILES = {
    "rsb-agent-linux-x86_64": b"\x7fELF the linux agent " * 4000,
    "rsb-agent-windows-x86_64.exe": b"MZ the windows agent " * 3000,
    "rsb-agent-macos-arm64": b"\xcf\xfa\xed\xfe the mac agent " * 2000,
}
WINDOWS_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def release_key() -> Ed25519PrivateKey:
    return release.generate_key()


@pytest.fixture
def settings(db_path: Path, tmp_path: Path, release_key: Ed25519PrivateKey) -> Settings:
    folder = tmp_path / "downloads"
    folder.mkdir()
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
    signed = "rsb-agent-linux-x86_64"
    (folder / f"{signed}.sig").write_bytes(release.sign(FILES[signed], release_key))
    public = tmp_path / "release.pub"
    public.write_bytes(release.public_key_pem(release_key))
    return Settings.from_mapping(
        {
            "db": str(db_path),
            **TEST_SETTINGS,
            "downloads_dir": str(folder),
            "release_public_key": str(public),
        }
    )


async def _open(tab: Tab, site: Site) -> None:
    await tab.page.goto(site.url("/"))
    await expect(tab.page.locator("#download-box")).to_have_attribute("data-ready", "true")


async def test_the_page_offers_this_platforms_file_with_its_hash_and_signature(
    site: Site, tabs: TabFactory, tmp_path: Path, release_key: Ed25519PrivateKey
) -> None:
    tab = await tabs()
    await _open(tab, site)
    page = tab.page
    box = page.locator("#download-box")
    await expect(box).to_be_visible()
    await expect(box).to_have_attribute("data-platform", "linux-x86_64")
    await expect(page.locator("#download-title")).to_have_text("Download the support program")
    link = page.locator("#download-link")
    await expect(link).to_have_text("Download for Linux (64-bit PC)")
    assert await link.get_attribute("href") == "/download/rsb-agent-linux-x86_64"
    data = FILES["rsb-agent-linux-x86_64"]
    await expect(page.locator("#download-sha256")).to_have_text(hashlib.sha256(data).hexdigest())
    signature = release.sign(data, release_key)  # Ed25519 is deterministic
    await expect(page.locator("#download-signature")).to_have_text(
        base64.b64encode(signature).decode()
    )
    fingerprint = release.fingerprint(release_key.public_key())
    await expect(page.locator("#download-key")).to_contain_text(fingerprint)
    pem = await page.locator("#download-key-pem").text_content()
    assert pem is not None and release.load_public_key(pem.encode()) is not None
    # The other systems' files are a click away.
    others = page.locator("#download-others a")
    await expect(others).to_have_count(2)

    async with page.expect_download(timeout=WAIT_MS) as started:
        await link.click()
    download = await started.value
    assert download.suggested_filename == "rsb-agent-linux-x86_64"
    saved = tmp_path / "saved"
    await download.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    release.verify(saved.read_bytes(), signature, release.load_public_key(pem.encode()))
    assert tab.problems == [], tab.problems


async def test_spanish_and_the_language_switch(site: Site, tabs: TabFactory) -> None:
    tab = await tabs(locale="es-ES")
    await _open(tab, site)
    page = tab.page
    await expect(page.locator("#download-title")).to_have_text(
        "Descargue el programa de asistencia"
    )
    await expect(page.locator("#download-link")).to_have_text(
        "Descargar para Linux (PC de 64 bits)"
    )
    await expect(page.locator("#download-box dt").first).to_have_text(
        "Suma de comprobación SHA-256"
    )
    await page.click(".lang-btn[data-lang='en']")
    await expect(page.locator("#download-link")).to_have_text("Download for Linux (64-bit PC)")
    sha = hashlib.sha256(FILES["rsb-agent-linux-x86_64"]).hexdigest()
    await expect(page.locator("#download-sha256")).to_have_text(sha)  # redrawn, still right
    assert tab.problems == [], tab.problems


async def _tab_with_agent(chromium: Browser, user_agent: str) -> Tab:
    context = await chromium.new_context(user_agent=user_agent, locale="en-US")
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    tab = Tab(page)
    page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
    return tab


async def test_a_windows_browser_gets_the_windows_file_unsigned(
    site: Site, chromium: Browser
) -> None:
    tab = await _tab_with_agent(chromium, WINDOWS_UA)
    try:
        await _open(tab, site)
        page = tab.page
        await expect(page.locator("#download-box")).to_have_attribute(
            "data-platform", "windows-x86_64"
        )
        link = page.locator("#download-link")
        await expect(link).to_have_text("Download for Windows (64-bit)")
        assert await link.get_attribute("href") == "/download/rsb-agent-windows-x86_64.exe"
        sha = hashlib.sha256(FILES["rsb-agent-windows-x86_64.exe"]).hexdigest()
        await expect(page.locator("#download-sha256")).to_have_text(sha)
        await expect(page.locator("#download-signature")).to_have_count(0)
        await expect(page.locator("#download-unsigned")).to_have_text("This file is not signed.")
        assert tab.problems == [], tab.problems
    finally:
        await tab.page.context.close()


async def test_a_phone_is_offered_no_file(site: Site, chromium: Browser) -> None:
    tab = await _tab_with_agent(chromium, IPHONE_UA)
    try:
        await _open(tab, site)
        page = tab.page
        await expect(page.locator("#download-box")).to_have_attribute("data-platform", "")
        await expect(page.locator("#download-none")).to_contain_text("not on a phone or tablet")
        await expect(page.locator("#download-link")).to_have_count(0)
        assert tab.problems == [], tab.problems
    finally:
        await tab.page.context.close()
