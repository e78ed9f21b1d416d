"""Sessions for the bench, made through the broker's real HTTP API.

One admin (made by ``rsb users add`` before the broker starts) creates engineer accounts with
``POST /api/v1/users``; each engineer logs in once (argon2 with the cheap bench settings). Each
session is then ``POST /api/v1/cases`` + ``POST /api/v1/cases/{n}/sessions`` +
``POST /api/v1/join``: the join code is exchanged for the agent's token exactly as a customer
does. Many sessions are made with a bounded number of requests in flight.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from bench.servers import BENCH_ADMIN, BENCH_PASSWORD

CASE = {
    "customer_name": "Bench Customer",
    "company": "Bench Ltd",
    "contact": "+34 600 000 000",
    "product": "PressLine 9000",
    "serial_number": "PL9-BENCH",
    "plan": "premium",
}


@dataclass
class Session:
    id: str
    code: str
    agent_token: str = ""
    customer_token: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self._http: aiohttp.ClientSession | None = None
        self.admin: dict[str, str] = {}
        self._serial = itertools.count(1)

    async def __aenter__(self) -> Api:
        connector = aiohttp.TCPConnector(limit=64)
        self._http = aiohttp.ClientSession(connector=connector)
        self.admin = await self.login(BENCH_ADMIN, BENCH_PASSWORD)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    async def call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        assert self._http is not None
        async with self._http.request(method, self.base + path, headers=headers, **kw) as resp:
            body = await resp.json()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {body}")
            return body

    async def login(self, name: str, password: str) -> dict[str, str]:
        body = await self.call(
            "POST", "/api/v1/login", json={"username": name, "password": password}
        )
        return {"Authorization": f"Bearer {body['token']}"}

    async def engineers(self, count: int, prefix: str = "eng") -> list[str]:
        """Make ``count`` engineers (role rse) and return a staff token for each."""

        async def one(i: int) -> str:
            name = f"{prefix}{i}"
            await self.call(
                "POST",
                "/api/v1/users",
                headers=self.admin,
                json={"name": name, "display_name": f"Engineer {i}", "role": "rse"}
                | {"password": BENCH_PASSWORD},
            )
            headers = await self.login(name, BENCH_PASSWORD)
            return headers["Authorization"].removeprefix("Bearer ")

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def new_session(self, staff: dict[str, str], *, join: bool = True) -> Session:
        case = await self.call(
            "POST",
            "/api/v1/cases",
            headers=staff,
            json=CASE | {"serial_number": f"PL9-{next(self._serial)}"},
        )
        made = await self.call("POST", f"/api/v1/cases/{case['number']}/sessions", headers=staff)
        session = Session(made["id"], made["code"])
        if join:
            await self.join(session)
        return session

    async def join(self, session: Session) -> None:
        joined = await self.call("POST", "/api/v1/join", json={"code": session.code})
        session.agent_token = joined["agent_token"]
        session.customer_token = joined["customer_token"]

    async def sessions(
        self, staff_token: str, count: int, *, concurrency: int = 8
    ) -> list[Session]:
        # Fewer joins in flight than the per-address join budget (10): the broker counts a
        # join against it until it has succeeded (docs/security.md), and every join here
        # comes from 127.0.0.1.
        staff = {"Authorization": f"Bearer {staff_token}"}
        gate = asyncio.Semaphore(concurrency)

        async def one() -> Session:
            async with gate:
                return await self.new_session(staff)

        return list(await asyncio.gather(*(one() for _ in range(count))))
