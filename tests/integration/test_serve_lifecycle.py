"""``rsb serve`` as a real process: its start, its access log and its stop.

Stopped by SIGTERM, exactly as a service manager stops it, its clients must see 1001 (going
away, reconnect and resume), on both event loops; with its port taken it must say so in one
line and exit; its access log must never hold a query string.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import REPO
from tests.integration.conftest import WAIT_UNIT
from tests.log_check import TokenLogCheck
from tests.relay_peers import subprotocols

CASE = {
    "customer_name": "Ana Ruiz",
    "company": "Imprenta Sur",
    "contact": "+34 600 000 001",
    "product": "PressLine 9000",
    "serial_number": "PL9-0001",
    "plan": "premium",
}
FAST_KDF = {"RSB_ARGON2_TIME_COST": "1", "RSB_ARGON2_MEMORY_KIB": "8192"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_command(port: int, db: Path) -> list[str]:
    return [sys.executable, "-m", "broker.cli", "serve", "--port", str(port), "--db", str(db)]


def _low_descriptor_limit() -> None:
    """Run in the child before exec: a common small soft limit, the hard limit untouched."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))


def _read_banner(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30 * WAIT_UNIT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Press Ctrl+C"):
            return lines
    raise AssertionError("rsb serve did not finish starting:\n" + "".join(lines))


def _soft_hard_open_files(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no open files limit in /proc")


async def _live_customer_socket(
    base: str, password: str
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse, str]:
    """Log in, open a case and a session, join it and open the customer's WebSocket."""
    http = aiohttp.ClientSession(base)
    login = await http.post("/api/v1/login", json={"username": "rse", "password": password})
    assert login.status == 200, await login.text()
    token = (await login.json())["token"]
    staff = {"Authorization": f"Bearer {token}"}
    # A token in the query string is ignored (401) and, below, must not reach the log.
    assert (await http.get(f"/api/v1/cases?token={token}&x=1")).status == 401
    case = await (await http.post("/api/v1/cases", json=CASE, headers=staff)).json()
    session = await (
        await http.post(f"/api/v1/cases/{case['number']}/sessions", headers=staff)
    ).json()
    joined = await (await http.post("/api/v1/join", json={"code": session["code"]})).json()
    ws = await http.ws_connect(
        "/ws/customer", protocols=subprotocols(joined["customer_token"]), autoping=True
    )
    first = await ws.receive(timeout=10 * WAIT_UNIT)
    assert first.type is aiohttp.WSMsgType.TEXT, first
    return http, ws, token


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_sigterm_closes_clients_with_1001_and_logs_paths_only(
    tmp_path: Path, loop: str, token_log_check: TokenLogCheck
) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [*_serve_command(port, tmp_path / "rsb.db"), "--demo-users", "--event-loop", loop],
        cwd=REPO,
        env={**os.environ, **FAST_KDF},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_low_descriptor_limit,
    )
    try:
        lines = _read_banner(proc)
        assert f"event loop: {loop}" in "".join(lines)
        # The soft descriptor limit was raised to the hard one at start.
        soft, hard = _soft_hard_open_files(proc.pid)
        assert soft == hard, (soft, hard)
        password = next(ln.split()[-1] for ln in lines if ln.split()[:1] == ["rse"])
        http, ws, token = await _live_customer_socket(f"http://127.0.0.1:{port}", password)
        try:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15 * WAIT_UNIT):
                while not ws.closed:
                    await ws.receive()
            assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY, ws.close_code
        finally:
            await ws.close()
            await http.close()
        output, _ = proc.communicate(timeout=15 * WAIT_UNIT)
        assert proc.returncode == 0, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + output
    token_log_check.scan_text(output, f"rsb serve ({loop})")
    access = [ln for ln in output.splitlines() if "aiohttp.access" in ln]
    assert any('"GET /api/v1/cases" 401' in ln for ln in access), access
    assert not [ln for ln in access if "?" in ln or "token" in ln], access
    assert token not in output and "Traceback" not in output, output


def test_a_taken_port_is_one_clear_line_and_an_exit(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            _serve_command(port, tmp_path / "rsb.db"),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30 * WAIT_UNIT,  # it used to hang here until SIGKILL
            check=False,
        )
    assert done.returncode == 1, (done.stdout, done.stderr)
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        f"error: cannot listen on 127.0.0.1:{port}: address already in use; "
        "pass --port or set RSB_PORT"
    ], done.stderr
    assert "Traceback" not in done.stderr and not re.search(r"Press Ctrl\+C", done.stdout)
