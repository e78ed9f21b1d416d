"""Measurement 7 (issue 11): a live session while 40 staff logins arrive at once.

Before issue 11 the broker ran Argon2id on its event loop, so every login froze every live
session for the KDF's time. This part measures, in the same run and interleaved by round, the
broker with ``kdf_workers=0`` (the KDF inline on the loop: the old path, kept as a setting for
this comparison) and with the KDF pool, both at Argon2's production cost (64 MiB, t=3):

- the broker's own ``rsb_event_loop_lag_max_seconds`` after the burst (the worst lateness of
  its 0.1 s lag timer over the last minute, which covers the whole live part of the round);
- the longest gap between frames at a viewer of a live session whose agent sends a 1 KiB
  update every 20 ms, from the first login sent to the last answer.

Each round starts a broker on a copy of one prepared database (users hashed at production
cost, an engineer's token), so nothing but the burst runs a KDF in the measured process. The 40
logins (a quarter each: two real users, a wrong password, an unknown user) come from 40
addresses (``X-Forwarded-For`` through a trusted proxy), and the pool's queue is as long as
the burst, so that both brokers check all 40 passwords: the same work, on or off the loop.

    python -m bench login            # this part alone; updates its section of docs/benchmarks.md
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import servers as srv
from bench.api import CASE
from bench.context import Context
from bench.wsclient import OP_BINARY, PEEK, WSClient, connect
from rsb_protocol import messages as msg
from rsb_protocol.framing import BROADCAST_SLOT, FrameType

LOGINS = 40
FRAME_INTERVAL = 0.020
FRAME_SIZE = 1024
ACK_EVERY = 5
TIMEOUT = 60.0
PRODUCTION_COST = {"RSB_ARGON2_TIME_COST": "3", "RSB_ARGON2_MEMORY_KIB": "65536"}
MODES = {
    "before": {"RSB_KDF_WORKERS": "0"},
    "after": {"RSB_KDF_WORKERS": "2", "RSB_KDF_QUEUE_LIMIT": str(LOGINS)},
}
"""``before``: the KDF on the event loop; ``after``: the pool as shipped (2 threads), with a
queue as long as the burst so that it checks every login as ``before`` does."""
COMMON = {**PRODUCTION_COST, "RSB_TRUSTED_PROXIES": "127.0.0.1/32"}
USERS = ("rita", "dana")
ACK_HEADER = struct.Struct(">BBBBHIQ")
"""An rsb frame header (docs/protocol.md): magic, type, flags, reserved, slot, epoch, seq."""


@dataclass
class Prepared:
    db: Path
    staff_token: str


@dataclass
class Round:
    loop_lag_ms: float
    idle_lag_ms: float
    frame_gap_ms: float
    burst_s: float
    answers: dict[int, int]


async def _call(http: aiohttp.ClientSession, base: str, method: str, path: str, **kw: Any) -> Any:
    async with http.request(method, base + path, **kw) as resp:
        body = await resp.json()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {body}")
        return body


def prepare(work: Path) -> Prepared:
    """A database with the burst's users and an engineer, hashed at production cost."""
    env = {**COMMON, **MODES["after"]}
    server = srv.start_broker(work, tag="login-template", env_overrides=env)
    base = f"http://127.0.0.1:{server.port}"

    async def make() -> str:
        async with aiohttp.ClientSession() as http:
            login = {"username": srv.BENCH_ADMIN, "password": srv.BENCH_PASSWORD}
            admin = await _call(http, base, "POST", "/api/v1/login", json=login)
            headers = {"Authorization": f"Bearer {admin['token']}"}
            for name in (*USERS, "live"):
                user = {"name": name, "display_name": name.title(), "role": "rse"}
                await _call(
                    http,
                    base,
                    "POST",
                    "/api/v1/users",
                    headers=headers,
                    json=user | {"password": srv.BENCH_PASSWORD},
                )
            login = {"username": "live", "password": srv.BENCH_PASSWORD}
            return str((await _call(http, base, "POST", "/api/v1/login", json=login))["token"])

    try:
        token = asyncio.run(make())
    finally:
        server.stop()
    return Prepared(work / "login-template.db", token)


class Viewer:
    """Arrival times of the live session's frames, acknowledged as a real viewer does."""

    def __init__(self, client: WSClient, slot: int) -> None:
        self.client = client
        self.slot = slot
        self.arrivals: list[float] = []
        client.on_binary = self._on_binary

    def _on_binary(self, prefix: bytes, size: int, now_ns: int) -> None:
        self.arrivals.append(now_ns / 1e9)
        if len(prefix) >= PEEK:
            seq = int.from_bytes(prefix[10:18], "big")
            if seq % ACK_EVERY == 0:
                epoch = int.from_bytes(prefix[6:10], "big")
                ack = ACK_HEADER.pack(0xB1, int(FrameType.ACK), 0, 0, self.slot, epoch, seq)
                self.client.send(OP_BINARY, ack)

    def worst_gap(self, start: float, end: float) -> float:
        """The longest interval between two frames that overlaps ``[start, end]`` (monotonic s)."""
        pairs = zip(self.arrivals, self.arrivals[1:], strict=False)
        return max((b - a for a, b in pairs if b >= start and a <= end), default=0.0)


async def _live_session(port: int, http: aiohttp.ClientSession, token: str) -> tuple[Any, ...]:
    """A joined session: the agent granting view, one admitted viewer; returns both clients."""
    base = f"http://127.0.0.1:{port}"
    staff = {"Authorization": f"Bearer {token}"}
    case = await _call(http, base, "POST", "/api/v1/cases", headers=staff, json=CASE)
    made = await _call(
        http, base, "POST", f"/api/v1/cases/{case['number']}/sessions", headers=staff
    )
    joined = await _call(http, base, "POST", "/api/v1/join", json={"code": made["code"]})
    agent = await connect(port, "/ws/agent", ("rsb.v1", f"rsb.token.{joined['agent_token']}"))

    def agent_text(text: str) -> None:
        message = msg.parse_message(text, 1 << 20)
        if isinstance(message, msg.ConsentRequest):
            grant = msg.ConsentGrant(message.request_id, message.slot, message.permission)
            agent.send_text(grant.to_json())

    agent.on_text = agent_text
    loop = asyncio.get_running_loop()
    admitted: asyncio.Future[int] = loop.create_future()
    slot: list[int] = []

    def viewer_text(text: str) -> None:
        message = msg.parse_message(text, 1 << 20)
        if isinstance(message, msg.Welcome):
            slot.append(message.slot)
        elif isinstance(message, msg.State) and slot and slot[0] in message.viewing_slots:
            if not admitted.done():
                admitted.set_result(slot[0])

    client = await connect(port, f"/ws/viewer/{made['id']}", ("rsb.v1", f"rsb.token.{token}"))
    client.on_text = viewer_text
    hello = msg.Hello(msg.Role.VIEWER, (msg.KeyAlgorithm.X25519,), "bench")
    client.send_text(hello.to_json())
    viewer = Viewer(client, await asyncio.wait_for(admitted, TIMEOUT))
    return agent, viewer


async def _send_frames(agent: WSClient, stop: asyncio.Event) -> None:
    template = agent.template(FRAME_SIZE)
    seq = 0
    next_at = time.monotonic()
    while not stop.is_set() and not agent.closed.done():
        seq += 1
        kind = int(FrameType.KEYFRAME if seq == 1 else FrameType.SCREEN_UPDATE)
        agent.write_parts(template.parts(kind, BROADCAST_SLOT, 1, seq, time.monotonic_ns()))
        next_at += FRAME_INTERVAL
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def _lag_max(http: aiohttp.ClientSession, port: int) -> float:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("rsb_event_loop_lag_max_seconds "):
            return float(line.split()[1])
    raise RuntimeError("rsb_event_loop_lag_max_seconds not in /metrics")


def _burst_bodies() -> list[dict[str, str]]:
    kinds = [
        {"username": USERS[0], "password": srv.BENCH_PASSWORD},
        {"username": USERS[1], "password": srv.BENCH_PASSWORD},
        {"username": USERS[0], "password": "not her password at all"},
        {"username": "nobody", "password": "no such user either"},
    ]
    return [kinds[i % len(kinds)] for i in range(LOGINS)]


async def measure(port: int, prepared: Prepared) -> Round:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        agent, viewer = await _live_session(port, http, prepared.staff_token)
        stop = asyncio.Event()
        sender = asyncio.create_task(_send_frames(agent, stop))
        try:
            await asyncio.sleep(1.0)  # the session is live and steady
            idle = await _lag_max(http, port)
            url = f"http://127.0.0.1:{port}/api/v1/login"

            async def login(i: int, body: dict[str, str]) -> int:
                headers = {"X-Forwarded-For": f"10.40.0.{i + 1}"}
                async with http.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    return resp.status

            started = time.monotonic()
            statuses = await asyncio.gather(
                *(login(i, body) for i, body in enumerate(_burst_bodies()))
            )
            ended = time.monotonic()
            await asyncio.sleep(0.5)  # a stall at the very end shows as a gap after it
            lag = await _lag_max(http, port)
        finally:
            stop.set()
            await sender
            agent.close()
            viewer.client.close()
    return Round(
        loop_lag_ms=lag * 1e3,
        idle_lag_ms=idle * 1e3,
        frame_gap_ms=viewer.worst_gap(started, ended) * 1e3,
        burst_s=ended - started,
        answers=dict(Counter(statuses)),
    )


def run_login(ctx: Context) -> None:
    report = ctx.report
    rounds = ctx.options.rounds
    ctx.log(f"login burst: preparing users at production Argon2 cost, {rounds} rounds")
    prepared = prepare(ctx.work)
    results: dict[str, list[Round]] = {mode: [] for mode in MODES}
    for index in range(rounds):
        order = list(MODES) if index % 2 == 0 else list(reversed(MODES))
        for mode in order:
            env = {**COMMON, **MODES[mode]}
            server = srv.start_broker(
                ctx.work, tag=f"login-{mode}", env_overrides=env, template_db=prepared.db
            )
            try:
                result = asyncio.run(measure(server.port, prepared))
            finally:
                server.stop()
            ctx.log(
                f"login burst {mode} round {index + 1}: loop lag {result.loop_lag_ms:.0f} ms, "
                f"frame gap {result.frame_gap_ms:.0f} ms, burst {result.burst_s:.1f} s, "
                f"answers {result.answers}"
            )
            results[mode].append(result)
    section = report.section(
        "login",
        "7. Login burst: a live session while 40 logins arrive at once",
        [
            "KDF",
            "worst event loop lag ms",
            "longest frame gap ms",
            "burst s (40 answers)",
            "idle loop lag ms",
            "answers",
        ],
    )
    labels = {"before": "on the event loop (before)", "after": "pool of 2 threads (after)"}
    for mode, measured in results.items():
        for key, unit, attr in (
            ("loop_lag_ms", "ms", "loop_lag_ms"),
            ("frame_gap_ms", "ms", "frame_gap_ms"),
            ("burst_s", "s", "burst_s"),
            ("idle_lag_ms", "ms", "idle_lag_ms"),
        ):
            figure = report.figure(f"login.{mode}.{key}", unit)
            for result in measured:
                figure.add(getattr(result, attr))
        answers = Counter[int]()
        for result in measured:
            answers.update(result.answers)
        row = [labels[mode]]
        for key in ("loop_lag_ms", "frame_gap_ms", "burst_s", "idle_lag_ms"):
            row.append(report.get(f"login.{mode}.{key}").text())
        row.append(", ".join(f"{count} x {status}" for status, count in sorted(answers.items())))
        section.rows.append(row)
    ratio = report.ratio("login.before.frame_gap_ms", "login.after.frame_gap_ms")
    section.notes += [
        f"Measured {report.meta.get('date', '')} on {report.meta.get('machine', '')} "
        f"({report.meta.get('CPU count', '?')} CPUs, load average at start "
        f"{report.meta.get('load average at start', '?')}), {rounds} rounds of each, interleaved; "
        "figures are the median with the spread (lowest-highest) of the rounds."
        + (f" The longest frame gap is {ratio:.0f}x shorter with the pool." if ratio else "")
        + " Alone: `python -m bench login`.",
        "Argon2id at the production cost (64 MiB, t=3, p=4); 20 of the 40 logins are right. "
        "Each login from its own address (X-Forwarded-For through a trusted proxy): from one "
        "address the login budget would check only 20 at once. The pool's queue is set to 40 "
        "so that it checks all 40 like the inline broker; as shipped (`kdf_queue_limit` 16) "
        "the rest would get 503 at once.",
        "Loop lag is the broker's own `rsb_event_loop_lag_max_seconds`; the frame gap is "
        "measured at a viewer of a live session (1 KiB every 20 ms from its agent) from the "
        "first login sent to the last answer. The inline broker's gap spans nearly the whole "
        "burst: no frame moves while passwords are hashed on the loop. The broker runs on "
        "uvloop, whose clock counts whole milliseconds; the viewer shares the machine's cores "
        "with the two KDF threads, which accounts for most of the pool's frame gap.",
    ]


__all__ = ["run_login"]
