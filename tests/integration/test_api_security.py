"""Security properties of the core API, each tested by trying to break it."""

from __future__ import annotations

from typing import Any

import pytest

from broker.app import create_app
from broker.audit.log import Actor
from broker.settings import Settings
from broker.types import Role
from tests.conftest import TEST_SETTINGS, Broker, ClientFactory, FakeClock
from tests.integration.test_api_input import CASE


async def _session(broker: Broker, headers: dict[str, str]) -> dict[str, Any]:
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=headers, json=CASE)
    session: dict[str, Any] = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=headers
    )
    return session


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        (Role.SECURITY, "POST", "/api/v1/cases", False),
        (Role.SECURITY, "GET", "/api/v1/sessions", False),
        (Role.SECURITY, "GET", "/api/v1/audit", True),
        (Role.ADMIN, "GET", "/api/v1/users", True),
        (Role.DESK, "GET", "/api/v1/users", False),
        (Role.DESK, "GET", "/api/v1/audit", False),
        (Role.RSE, "GET", "/api/v1/audit", False),
        (Role.DESK, "POST", "/api/v1/cases", True),
    ],
)
async def test_role_table(
    broker: Broker, role: Role, method: str, path: str, allowed: bool
) -> None:
    headers = await broker.staff("someone", role)
    body = CASE if method == "POST" else None
    resp = await broker.client.request(method, path, headers=headers, json=body)
    if allowed:
        assert resp.status in (200, 201), await resp.text()
    else:
        assert resp.status == 403
        assert (await resp.json())["error"] == "forbidden"


async def test_join_guessing_is_rate_limited_per_address(broker: Broker) -> None:
    limit = broker.services.settings.join_attempts_per_address
    for i in range(limit):
        resp = await broker.client.post("/api/v1/join", json={"code": f"{i:010d}"})
        assert resp.status == 410
    resp = await broker.client.post("/api/v1/join", json={"code": "0123456789"})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    # Even the right code is refused while the address is limited ...
    headers = await broker.staff("rita", Role.RSE)
    session = await _session(broker, headers)
    resp = await broker.client.post("/api/v1/join", json={"code": session["code"]})
    assert resp.status == 429
    # ... and accepted once the window has passed (a fresh code: the first one expired).
    broker.clock.advance(seconds=broker.services.settings.join_attempt_window.total_seconds())
    session = await _session(broker, headers)
    resp = await broker.client.post("/api/v1/join", json={"code": session["code"]})
    assert resp.status == 200
    metrics = await (await broker.client.get("/metrics")).text()
    assert 'rsb_join_failures_total{reason="unknown"} ' + f"{float(limit)}" in metrics


async def test_forwarded_for_is_ignored_without_a_trusted_proxy(broker: Broker) -> None:
    """An attacker cannot dodge the limit by inventing X-Forwarded-For addresses."""
    limit = broker.services.settings.join_attempts_per_address
    for i in range(limit):
        resp = await broker.client.post(
            "/api/v1/join",
            json={"code": f"{i:010d}"},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
        assert resp.status == 410
    resp = await broker.client.post(
        "/api/v1/join", json={"code": "0000000000"}, headers={"X-Forwarded-For": "198.51.100.99"}
    )
    assert resp.status == 429


async def test_forwarded_for_counts_behind_a_trusted_proxy(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock
) -> None:
    settings = Settings.from_mapping(
        {"db": str(db_path), "trusted_proxies": "127.0.0.1/32", **TEST_SETTINGS}
    )
    broker = Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)
    limit = settings.join_attempts_per_address
    for i in range(limit):
        await broker.client.post(
            "/api/v1/join", json={"code": f"{i:010d}"}, headers={"X-Forwarded-For": "198.51.100.7"}
        )
    limited = await broker.client.post(
        "/api/v1/join", json={"code": "0000000000"}, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    other = await broker.client.post(
        "/api/v1/join", json={"code": "0000000000"}, headers={"X-Forwarded-For": "198.51.100.8"}
    )
    assert (limited.status, other.status) == (429, 410)


async def test_global_guessing_alarms_but_never_locks_out(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock
) -> None:
    settings = Settings.from_mapping(
        {
            "db": str(db_path),
            "trusted_proxies": "127.0.0.1/32",
            "join_global_alarm_per_minute": 5,
            **TEST_SETTINGS,
        }
    )
    broker = Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)
    for i in range(12):  # a "botnet": each address guesses once
        await broker.client.post(
            "/api/v1/join", json={"code": f"{i:010d}"}, headers={"X-Forwarded-For": f"10.9.0.{i}"}
        )
    metrics = await (await broker.client.get("/metrics")).text()
    assert "rsb_join_guess_alarms_total 1.0" in metrics
    headers = await broker.staff("rita", Role.RSE)
    session = await _session(broker, headers)
    resp = await broker.client.post(
        "/api/v1/join", json={"code": session["code"]}, headers={"X-Forwarded-For": "10.9.1.1"}
    )
    assert resp.status == 200, "a real customer still gets in during the alarm"


async def test_code_expires(broker: Broker) -> None:
    headers = await broker.staff("rita", Role.RSE)
    session = await _session(broker, headers)
    broker.clock.advance(minutes=10, seconds=1)
    resp = await broker.client.post("/api/v1/join", json={"code": session["code"]})
    assert resp.status == 410
    queue = await broker.call("GET", "/api/v1/sessions?state=ended", status=200, headers=headers)
    assert [s["end_reason"] for s in queue["sessions"]] == ["code_expired"]


async def test_login_failures_are_uniform_and_limited(broker: Broker) -> None:
    await broker.add_user("rita", Role.RSE)
    bodies = []
    for name in ("rita", "nobody"):
        resp = await broker.client.post(
            "/api/v1/login", json={"username": name, "password": "wrong password!"}
        )
        assert resp.status == 401
        bodies.append(await resp.json())
    assert bodies[0] == bodies[1], "unknown user and wrong password answer alike"
    limit = broker.services.settings.login_attempts_per_address
    for _ in range(limit):
        await broker.client.post("/api/v1/login", json={"username": "x", "password": "y"})
    resp = await broker.client.post("/api/v1/login", json={"username": "x", "password": "y"})
    assert resp.status == 429


async def test_disabled_user_token_stops_at_once(broker: Broker) -> None:
    admin = await broker.staff("root", Role.ADMIN)
    rita = await broker.staff("rita", Role.RSE)
    assert (await broker.client.get("/api/v1/me", headers=rita)).status == 200
    await broker.call("POST", "/api/v1/users/rita/disable", status=200, headers=admin)
    assert (await broker.client.get("/api/v1/me", headers=rita)).status == 401


async def test_key_rotation_keeps_sessions_and_expiry_ends_them(broker: Broker) -> None:
    rita = await broker.staff("rita", Role.RSE)
    await broker.services.auth.rotate_keys(Actor.system())
    assert (await broker.client.get("/api/v1/me", headers=rita)).status == 200
    fresh = await broker.login("rita")
    assert fresh != rita
    broker.clock.advance(hours=2)
    assert (await broker.client.get("/api/v1/me", headers=fresh)).status == 401


async def test_no_setup_endpoint_on_the_web(broker: Broker) -> None:
    """With no users at all, nobody can create the first admin over HTTP."""
    resp = await broker.client.post(
        "/api/v1/users",
        json={"name": "mallory", "display_name": "M", "role": "admin", "password": "x" * 16},
    )
    assert resp.status == 401
    assert await broker.services.store.count_users() == 0
