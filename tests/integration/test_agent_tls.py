"""`rsb-agent` over TLS: it verifies the broker's certificate, and `--ca` pins a private CA.

The broker serves HTTPS and WSS with a self-signed certificate for 127.0.0.1. Without `--ca`
the agent refuses it before spending the code (exit 3); with `--ca` it joins over `wss://` and
a viewer that trusts the same CA receives the screen.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.appkeys import SERVICES_KEY
from broker.audit.log import Actor
from broker.settings import Settings
from broker.types import Role
from rsb_viewer.client import ViewerClient
from tests.conftest import PASSWORD, FakeClock
from tests.integration.agent_harness import AgentProcess
from tests.integration.conftest import WAIT_UNIT
from tests.integration.test_api_input import CASE
from tests.integration.test_serve import _self_signed

ServerFactory = Callable[..., Awaitable[TestServer]]


async def _open_session(base: str, trusting: ssl.SSLContext) -> tuple[str, str, str]:
    """Log in as Rita and open a case and a session; returns (token, session id, code)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as http:

        async def post(path: str, token: str | None = None, **kwargs: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.post(base + path, headers=headers, **kwargs) as resp:
                assert resp.status in (200, 201), await resp.text()
                return await resp.json()

        token = (await post("/api/v1/login", json={"username": "rita", "password": PASSWORD}))[
            "token"
        ]
        case = await post("/api/v1/cases", token, json=CASE)
        session = await post(f"/api/v1/cases/{case['number']}/sessions", token)
        return token, session["id"], session["code"]


async def test_the_agent_verifies_the_broker_and_trusts_a_pinned_ca(
    aiohttp_server: ServerFactory, settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    app: web.Application = create_app(settings, clock=clock)
    server = await aiohttp_server(app, ssl=served)
    await app[SERVICES_KEY].auth.add_user("rita", "Rita Reyes", Role.RSE, PASSWORD, Actor.system())
    base = f"https://127.0.0.1:{server.port}"
    trusting = ssl.create_default_context(cafile=str(cert))
    token, session_id, code = await _open_session(base, trusting)
    common = ["--broker", base, "--source", "test-pattern", "--ui", "terminal"]

    # The system's trust store does not know this certificate: refused, code not spent.
    refused = await AgentProcess.start(["join", code, *common])
    assert await refused.stop() == 3
    assert "CERTIFICATE_VERIFY_FAILED" in refused.output, refused.output

    agent = await AgentProcess.start(["join", code, "--ca", str(cert), *common])
    viewer = ViewerClient(base, token, session_id, ssl_context=trusting)
    try:
        await agent.wait_for("Waiting for the engineer")
        await viewer.connect()
        assert viewer.url.startswith("wss://")
        await agent.answer("y")
        picture = await viewer.wait_first_keyframe(15 * WAIT_UNIT)
        assert picture.shape == (800, 1280, 4)
    finally:
        await viewer.close()
        assert await agent.stop() == 0, agent.output
