"""Per-address budgets against parallel senders: hundreds of requests fired at once.

Before issue 11 each route checked the budget, awaited the database (and the KDF), and only
then recorded the failure, so every request of a burst passed the check: 500 parallel wrong
codes were all tried (budget 10), 40 parallel wrong passwords all checked (budget 20). Each
test here fires the burst with ``asyncio.gather`` on a connection pool without a limit (every
request in flight at once) against the real broker, and counts the answers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from broker.app import create_app
from broker.settings import Settings
from broker.types import Role
from tests.conftest import PASSWORD, TEST_SETTINGS, Broker, ClientFactory, FakeClock
from tests.integration.test_api_input import CASE

BURST = 500


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with no connection limit: a burst really is in flight all at once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def _burst(
    broker: Broker,
    http: aiohttp.ClientSession,
    path: str,
    bodies: list[dict[str, Any]],
    headers: list[dict[str, str]] | None = None,
) -> list[tuple[int, dict[str, Any], str | None]]:
    """POST every body at once; returns (status, JSON body, Retry-After) per request."""
    url = str(broker.client.make_url(path))

    async def one(body: dict[str, Any], head: dict[str, str]) -> tuple[int, Any, str | None]:
        async with http.post(url, json=body, headers=head) as resp:
            return resp.status, await resp.json(), resp.headers.get("Retry-After")

    heads = headers or [{} for _ in bodies]
    return list(await asyncio.gather(*(one(b, h) for b, h in zip(bodies, heads, strict=True))))


async def _metric(broker: Broker, name: str) -> float:
    text = await (await broker.client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _audited(broker: Broker, action: str) -> int:
    return len([row async for row in broker.services.store.audit_rows() if row.action == action])


async def _proxied_broker(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock, **extra: Any
) -> Broker:
    settings = Settings.from_mapping(
        {"db": str(db_path), "trusted_proxies": "127.0.0.1/32", **TEST_SETTINGS, **extra}
    )
    return Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)


async def test_500_parallel_wrong_codes_get_at_most_the_budget_and_raise_the_alarm(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    broker = await _proxied_broker(aiohttp_client, db_path, clock, join_global_alarm_per_minute=100)
    limit = broker.services.settings.join_attempts_per_address
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    codes = [{"code": f"{i:010d}"} for i in range(BURST - 20)] + [{"code": "123"}] * 20
    answers = await _burst(broker, http, "/api/v1/join", codes, [attacker] * BURST)

    statuses = Counter(status for status, _, _ in answers)
    assert statuses[410] + statuses[422] == limit, statuses
    assert statuses[429] == BURST - limit, statuses
    assert {body["error"] for status, body, _ in answers if status == 429} == {"rate_limited"}
    assert all(int(after or 0) >= 1 for status, _, after in answers if status == 429)
    assert await _audited(broker, "session.join_rejected") == limit, "only the budget was tried"
    # One address alone is held to its budget; the alarm still sees the guessing pressure.
    assert await _metric(broker, "rsb_join_guess_alarms_total") == 1.0

    headers = await broker.staff("rita", Role.RSE)
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=headers, json=CASE)
    made = await broker.call(
        "POST", f"/api/v1/cases/{case['number']}/sessions", status=201, headers=headers
    )
    refused = await broker.client.post(
        "/api/v1/join", json={"code": made["code"]}, headers=attacker
    )
    assert refused.status == 429, "the attacker's budget is spent, even for a right code"
    customer = await broker.client.post(
        "/api/v1/join", json={"code": made["code"]}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert customer.status == 200, "the customer's own address is unaffected"


async def test_parallel_guesses_from_many_addresses_raise_the_alarm(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    broker = await _proxied_broker(aiohttp_client, db_path, clock, join_global_alarm_per_minute=150)
    count = 300
    answers = await _burst(
        broker,
        http,
        "/api/v1/join",
        [{"code": f"{i:010d}"} for i in range(count)],
        [{"X-Forwarded-For": f"10.20.{i // 200}.{i % 200}"} for i in range(count)],
    )
    assert Counter(status for status, _, _ in answers) == {410: count}
    assert await _metric(broker, "rsb_join_guess_alarms_total") == 1.0
    assert await _metric(broker, 'rsb_join_failures_total{reason="unknown"}') == count


async def test_parallel_status_lookups_share_the_budget(
    broker: Broker, http: aiohttp.ClientSession
) -> None:
    headers = await broker.staff("rita", Role.RSE)
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=headers, json=CASE)
    limit = broker.services.settings.join_attempts_per_address
    right = {"case_number": case["number"], "serial_number": CASE["serial_number"]}
    wrong = [{"case_number": case["number"], "serial_number": f"guess-{i}"} for i in range(300)]

    answers = await _burst(broker, http, "/api/v1/status", wrong)
    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {404: limit, 429: 300 - limit}, statuses
    resp = await broker.client.post("/api/v1/status", json=right)
    assert resp.status == 429, "the budget is spent: even the right pair waits"


async def test_parallel_right_status_lookups_are_refunded(
    broker: Broker, http: aiohttp.ClientSession
) -> None:
    headers = await broker.staff("rita", Role.RSE)
    case = await broker.call("POST", "/api/v1/cases", status=201, headers=headers, json=CASE)
    limit = broker.services.settings.join_attempts_per_address
    right = {"case_number": case["number"], "serial_number": CASE["serial_number"]}
    for _ in range(3):  # successes give their unit back: a customer may look again and again
        answers = await _burst(broker, http, "/api/v1/status", [right] * limit)
        assert Counter(status for status, _, _ in answers) == {200: limit}


async def test_40_parallel_wrong_passwords_check_at_most_the_login_budget(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    # A KDF queue as long as the burst, so that only the login budget decides who is checked.
    broker = await _proxied_broker(aiohttp_client, db_path, clock, kdf_queue_limit=40)
    await broker.add_user("rita", Role.RSE)
    limit = broker.services.settings.login_attempts_per_address
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    guesses = [{"username": "rita", "password": f"guess number {i}"} for i in range(40)]

    answers = await _burst(broker, http, "/api/v1/login", guesses, [attacker] * 40)
    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {401: limit, 429: 40 - limit}, statuses
    assert await _metric(broker, "rsb_login_failures_total") == limit
    assert await _audited(broker, "auth.login_failed") == limit

    right = {"username": "rita", "password": PASSWORD}
    assert (await broker.client.post("/api/v1/login", json=right, headers=attacker)).status == 429
    other = {"X-Forwarded-For": "203.0.113.9"}
    assert (await broker.client.post("/api/v1/login", json=right, headers=other)).status == 200


async def test_parallel_valid_logins_hold_the_budget_only_while_in_flight(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """A support centre behind one NAT address: logins in flight count, successes are refunded."""
    broker = await _proxied_broker(aiohttp_client, db_path, clock, kdf_queue_limit=40)
    await broker.add_user("rita", Role.RSE)
    limit = broker.services.settings.login_attempts_per_address
    right = {"username": "rita", "password": PASSWORD}

    first = await _burst(broker, http, "/api/v1/login", [right] * 40)
    assert Counter(status for status, _, _ in first) == {200: limit, 429: 40 - limit}
    # Refused only because answers were pending: the advice is a short wait, not the window.
    assert {after for status, _, after in first if status == 429} == {"1"}
    again = await _burst(broker, http, "/api/v1/login", [right] * limit)
    assert Counter(status for status, _, _ in again) == {200: limit}, "all units came back"
    assert await _metric(broker, "rsb_login_failures_total") == 0
