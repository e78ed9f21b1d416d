"""The password KDF off the event loop: live work keeps its pace during a burst of logins.

Before issue 11, Argon2 ran on the loop: one login froze every live session for the KDF's
time, 40 logins for seconds. These tests run the real broker in the test's own event loop with
Argon2's production cost, so a task ticking on that loop sees any stall the broker causes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import aiohttp
import pytest

from broker.app import create_app
from broker.auth import passwords
from broker.settings import Settings
from broker.types import Role
from tests.conftest import PASSWORD, TEST_SETTINGS, Broker, ClientFactory, FakeClock
from tests.integration.agent_harness import eventually_async

T = TypeVar("T")

REAL_COST = {
    "argon2_time_cost": passwords.DEFAULT_PARAMS.time_cost,
    "argon2_memory_kib": passwords.DEFAULT_PARAMS.memory_cost,
}
TICK = 0.005


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


@pytest.fixture(scope="module")
def kdf_seconds() -> float:
    """One Argon2id verification at the production cost, timed on this machine now."""
    stored = passwords.hash_password(PASSWORD)
    started = time.perf_counter()
    passwords.verify_password(stored, PASSWORD)
    return time.perf_counter() - started


async def _broker(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock, **extra: Any
) -> Broker:
    settings = Settings.from_mapping({"db": str(db_path), **TEST_SETTINGS, **REAL_COST, **extra})
    return Broker(await aiohttp_client(create_app(settings, clock=clock)), clock)


async def _worst_gap_while(work: Awaitable[T]) -> tuple[T, float]:
    """Run ``work`` while a task on the same loop ticks every ``TICK``; return its worst gap."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    worst = 0.0

    async def tick() -> None:
        nonlocal worst
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(TICK)
            now = loop.time()
            worst = max(worst, now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        result = await work
    finally:
        done.set()
        await ticker
    return result, worst


async def _logins(
    broker: Broker, http: aiohttp.ClientSession, bodies: list[dict[str, str]], *, spread: bool
) -> list[tuple[int, Any, str | None]]:
    """POST every login at once, each from its own address if ``spread`` (via the proxy)."""
    url = str(broker.client.make_url("/api/v1/login"))

    async def one(i: int, body: dict[str, str]) -> tuple[int, Any, str | None]:
        headers = {"X-Forwarded-For": f"10.30.0.{i + 1}"} if spread else {}
        async with http.post(url, json=body, headers=headers) as resp:
            return resp.status, await resp.json(), resp.headers.get("Retry-After")

    return list(await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))))


def _mixed_burst(count: int) -> list[dict[str, str]]:
    """A quarter each: two real users, a wrong password, an unknown user."""
    kinds = [
        {"username": "rita", "password": PASSWORD},
        {"username": "dana", "password": PASSWORD},
        {"username": "rita", "password": "not her password at all"},
        {"username": "nobody", "password": "no such user either"},
    ]
    return [kinds[i % 4] for i in range(count)]


async def test_40_logins_at_once_leave_the_loop_free(
    aiohttp_client: ClientFactory,
    db_path: Any,
    clock: FakeClock,
    http: aiohttp.ClientSession,
    kdf_seconds: float,
) -> None:
    broker = await _broker(
        aiohttp_client, db_path, clock, trusted_proxies="127.0.0.1/32", kdf_queue_limit=40
    )
    await broker.add_user("rita", Role.RSE)
    await broker.add_user("dana", Role.DESK)

    started = time.perf_counter()
    answers, worst_gap = await _worst_gap_while(
        _logins(broker, http, _mixed_burst(40), spread=True)
    )
    burst = time.perf_counter() - started

    assert Counter(status for status, _, _ in answers) == {200: 20, 401: 20}
    # 40 KDFs took seconds; the loop never waited as long as one of them (inline: the burst).
    assert burst > 5 * kdf_seconds, (burst, kdf_seconds)
    assert worst_gap < kdf_seconds, (worst_gap, kdf_seconds)


async def test_the_probe_sees_a_kdf_run_on_the_loop(
    aiohttp_client: ClientFactory,
    db_path: Any,
    clock: FakeClock,
    http: aiohttp.ClientSession,
    kdf_seconds: float,
) -> None:
    """``kdf_workers=0`` is the old inline path: the same probe then sees whole KDFs as gaps."""
    broker = await _broker(aiohttp_client, db_path, clock, kdf_workers=0)
    await broker.add_user("rita", Role.RSE)
    await broker.add_user("dana", Role.DESK)
    answers, worst_gap = await _worst_gap_while(
        _logins(broker, http, _mixed_burst(4), spread=False)
    )
    assert Counter(status for status, _, _ in answers) == {200: 2, 401: 2}
    assert worst_gap > kdf_seconds / 2, (worst_gap, kdf_seconds)


async def test_a_flood_beyond_the_queue_limit_is_refused_at_once_with_503(
    aiohttp_client: ClientFactory, db_path: Any, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    workers, queue = 1, 2
    broker = await _broker(
        aiohttp_client, db_path, clock, kdf_workers=workers, kdf_queue_limit=queue
    )
    await broker.add_user("rita", Role.RSE)
    budget = broker.services.settings.login_attempts_per_address
    wrong = {"username": "rita", "password": "a wrong password here"}

    answers = await _logins(broker, http, [wrong] * 30, spread=False)
    statuses = Counter(status for status, _, _ in answers)
    assert statuses[429] == 30 - budget, statuses  # the address's budget comes first
    assert 1 <= statuses[401] <= workers + queue, statuses
    assert statuses[401] + statuses[503] == budget, statuses
    refused = [(body, after) for status, body, after in answers if status == 503]
    assert {body["error"] for body, _ in refused} == {"overloaded"}
    assert all("too many passwords at once" in body["message"] for body, _ in refused)
    assert {after for _, after in refused} == {"1"}

    async def metric(name: str) -> float | None:
        text = await (await broker.client.get("/metrics")).text()
        values = [line.split()[1] for line in text.splitlines() if line.startswith(name + " ")]
        return float(values[0]) if values else None

    assert await metric("rsb_kdf_overloaded_total") == statuses[503]
    await eventually_async(
        lambda: _is_zero(metric("rsb_kdf_jobs")), timeout=30, what="the KDF pool to drain"
    )
    # Refused logins checked no password, so they gave their unit back: the address may log in.
    right = {"username": "rita", "password": PASSWORD}
    assert (await broker.client.post("/api/v1/login", json=right)).status == 200


async def _is_zero(value: Awaitable[float | None]) -> bool:
    return await value == 0.0


async def test_loop_lag_and_kdf_metrics_are_exposed(broker: Broker) -> None:
    async def sampled() -> str | None:
        text = await (await broker.client.get("/metrics")).text()
        counts = [
            line
            for line in text.splitlines()
            if line.startswith("rsb_event_loop_lag_observed_seconds_count ")
        ]
        return text if counts and float(counts[0].split()[1]) > 0 else None

    text = await eventually_async(sampled, timeout=10, what="a loop lag sample")
    for name in (
        "rsb_event_loop_lag_seconds ",
        "rsb_event_loop_lag_max_seconds ",
        'rsb_event_loop_lag_observed_seconds_bucket{le="0.1"} ',
        "rsb_kdf_jobs 0.0",
        "rsb_kdf_overloaded_total 0.0",
    ):
        assert name in text, name


async def test_the_kdf_threads_end_with_the_app(
    aiohttp_client: ClientFactory, settings: Settings, clock: FakeClock
) -> None:
    client = await aiohttp_client(create_app(settings, clock=clock))
    broker = Broker(client, clock)
    await broker.staff("rita", Role.RSE)

    def kdf_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("rsb-kdf")]

    assert kdf_threads(), "the login ran in the pool"
    await client.close()
    assert not kdf_threads()
