"""Fixtures shared by every test: settings on a real SQLite file, a clock the test controls,
and the real broker app served on 127.0.0.1 by pytest-aiohttp with ``rsb serve``'s runner.

Also installs the session-wide token log check (``tests/log_check.py``): no log record of the
whole run may carry a token.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from broker.api.server import BrokerRunner
from broker.app import create_app
from broker.appkeys import SERVICES_KEY
from broker.audit.log import Actor
from broker.services import Services
from broker.settings import Settings
from broker.types import Role
from tests.log_check import TokenLogCheck, TokenLogPlugin

REPO = Path(__file__).resolve().parent.parent

_TOKEN_LOG = TokenLogPlugin()


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, its own pytest_configure runs at once (a historic hook).
    config.pluginmanager.register(_TOKEN_LOG, "token-log-check")


@pytest.fixture
def token_log_check() -> TokenLogCheck:
    """The session's token log check (to scan captured child output, or to test the check)."""
    return _TOKEN_LOG.check


# Cheap password hashing for tests: the KDF's cost is a setting, not a code path.
TEST_SETTINGS = {"argon2_time_cost": 1, "argon2_memory_kib": 8192}

PASSWORD = "correct horse battery staple"


@dataclass
class FakeClock:
    """A clock the test moves by hand; services read time only through it."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 10, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "rsb.db"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings.from_mapping({"db": str(db_path), **TEST_SETTINGS})


ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@dataclass
class Broker:
    """The running app, its HTTP client and helpers to act as staff."""

    client: TestClient[web.Request, web.Application]
    clock: FakeClock

    @property
    def port(self) -> int:
        """The port the broker is served on (127.0.0.1), for raw-socket clients."""
        port = self.client.port
        assert port is not None
        return port

    @property
    def services(self) -> Services:
        return self.client.app[SERVICES_KEY]

    async def add_user(self, name: str, role: Role, display: str | None = None) -> None:
        await self.services.auth.add_user(
            name, display or name.title(), role, PASSWORD, Actor.system()
        )

    async def login(self, name: str) -> dict[str, str]:
        resp = await self.client.post(
            "/api/v1/login", json={"username": name, "password": PASSWORD}
        )
        assert resp.status == 200, await resp.text()
        token = (await resp.json())["token"]
        return {"Authorization": f"Bearer {token}"}

    async def staff(self, name: str, role: Role, display: str | None = None) -> dict[str, str]:
        await self.add_user(name, role, display)
        return await self.login(name)

    async def call(
        self,
        method: str,
        path: str,
        *,
        status: int,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        body = await resp.json()
        assert resp.status == status, (resp.status, body)
        return body


class BrokerTestServer(TestServer):
    """pytest-aiohttp's test server, serving the app through ``rsb serve``'s runner."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        # pytest-aiohttp cancels a handler whose client left; rsb serve lets it finish.
        kwargs.pop("handler_cancellation", None)
        return BrokerRunner(self.app, **kwargs)


@pytest.fixture
async def broker(aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock) -> Broker:
    _TOKEN_LOG.check.broker_tests += 1
    client = await aiohttp_client(BrokerTestServer(create_app(settings, clock=clock)))
    return Broker(client, clock)


def rsb(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``rsb`` command line in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def imported_packages(package: str) -> set[str]:
    """Top-level names of every absolute import in a package of the repository.

    Read from the source, so imports inside functions count too (an import check at module load
    would miss them).
    """
    found: set[str] = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found
