"""Start and stop the relays under test, each in its own process on 127.0.0.1, by PID.

- the broker exactly as production starts it (``python -m broker.cli serve``, on uvloop, or
  ``--event-loop asyncio``), or through ``bench.serve_broker`` with lifted rate limits;
- the minimal aiohttp relay (``bench.minimal_relay``);
- websockify from PyPI (``python -m websockify``), forwarding to a TCP sink the bench runs;
- MeshCentral 1.1.55 from npm, installed into a scratch folder outside the repository and
  configured as in shared/notes/peers.md.

``CpuSampler`` reads a process tree's CPU time (children included) over a window, so every
figure can show whether the relay was the bottleneck.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("RSB_BENCH_PEERS", "/tmp/rsb-bench-peers"))
MESHCENTRAL_VERSION = "1.1.55"
BENCH_ADMIN = "benchadmin"
BENCH_PASSWORD = "bench-password-not-secret"
CHEAP_ARGON2 = {"RSB_ARGON2_TIME_COST": "1", "RSB_ARGON2_MEMORY_KIB": "8192"}


class PeerUnavailable(Exception):
    """A peer could not be installed or started; the message is the exact reason."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerUnavailable(f"exited with {proc.returncode}: {tail(log)}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise PeerUnavailable(f"no listener on port {port} after {timeout:.0f} s: {tail(log)}")


def tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def stop_pid(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it lingers; only this PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)
    child_pids: list[int] = field(default_factory=list)
    sink_port: int = 0
    """websockify only: the TCP port it forwards to (the load generator listens there)."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def relay_process(self) -> psutil.Process:
        """The process doing the relaying (MeshCentral's server is a child of its launcher)."""
        for pid in self.child_pids:
            if psutil.pid_exists(pid):
                return psutil.Process(pid)
        return psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.relay_process().memory_info().rss)

    def stop(self) -> None:
        for pid in self.child_pids:  # known children first, each by its own PID
            try:
                child = psutil.Process(pid)
                child.terminate()
                child.wait(5)
            except psutil.TimeoutExpired:
                child.kill()
            except psutil.Error:
                pass
        stop_pid(self.proc)
        for proc in self.extra:
            stop_pid(proc)


def _on_cpu_seconds(proc: psutil.Process) -> float:
    """The time a process's threads have spent on a CPU, from the scheduler, in seconds.

    ``/proc/<pid>/task/<tid>/schedstat`` counts nanoseconds; the user and system times of
    ``cpu_times()`` count 10 ms ticks, which over a 2 s window at a tenth of a core is a step
    of 5 %: more than some of the differences measured (the fan-out's CPU per byte). A thread
    that ends inside the window takes its time with it; the relays' threads live as long as
    they do. Without schedstat, the ticks.
    """
    tasks = f"/proc/{proc.pid}/task"
    try:
        tids = os.listdir(tasks)
    except OSError:
        tids = []
    total_ns = 0
    for tid in tids:
        try:
            with open(f"{tasks}/{tid}/schedstat") as stat:
                total_ns += int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    if total_ns:
        return total_ns / 1e9
    times = proc.cpu_times()
    return float(times.user + times.system)


class CpuSampler:
    """CPU seconds used by a process and its children between ``start`` and ``stop``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._t0 = 0.0
        self._c0 = 0.0
        self.cpu_s = 0.0
        self.wall_s = 0.0

    def _cpu(self) -> float:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        for proc in procs:
            try:
                total += _on_cpu_seconds(proc)
            except psutil.Error:
                pass
        return total

    def start(self) -> None:
        self._c0 = self._cpu()
        self._t0 = time.monotonic()

    def stop(self) -> float:
        """Fraction of one core used over the window (1.0 = one core saturated)."""
        self.cpu_s = self._cpu() - self._c0
        self.wall_s = time.monotonic() - self._t0
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


# --- the broker -------------------------------------------------------------------------------


def start_broker(
    workdir: Path,
    *,
    event_loop: str | None = None,
    lift_rate_limits: bool = False,
    heartbeat: float | None = None,
    tag: str = "broker",
    tree: Path | None = None,
    env_overrides: Mapping[str, str] | None = None,
    template_db: Path | None = None,
) -> Server:
    """A fresh database, one admin user made with ``rsb users add``, then ``rsb serve``.

    ``heartbeat`` sets ``relay_heartbeat`` (seconds between pings; 20 as shipped). ``tree``
    runs the ``broker`` package of another source tree (an export of an older commit), to
    measure before and after a change in the same run. ``env_overrides`` are ``RSB_*``
    settings for both commands (on top of the cheap Argon2 cost); ``template_db`` is a
    database (of a stopped broker) to start from a copy of, instead of a fresh one.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / f"{tag}.db"
    for leftover in workdir.glob(f"{tag}.db*"):
        leftover.unlink()
    env = {**os.environ, **CHEAP_ARGON2, **(env_overrides or {})}
    if heartbeat is not None:
        env["RSB_RELAY_HEARTBEAT"] = str(heartbeat)
    cwd = REPO
    if tree is not None:
        cwd = tree
        env["PYTHONPATH"] = os.pathsep.join([str(tree), str(REPO)])
    if template_db is not None:
        for part in template_db.parent.glob(template_db.name + "*"):  # with -wal and -shm
            shutil.copyfile(part, db.with_name(db.name + part.name[len(template_db.name) :]))
    else:
        add = subprocess.run(
            [sys.executable, "-m", "broker.cli", "users", "add", BENCH_ADMIN, "--role", "admin"]
            + ["--password-stdin", "--db", str(db)],
            input=BENCH_PASSWORD + "\n",
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=60,
            check=False,
        )
        if add.returncode != 0:
            raise RuntimeError(f"rsb users add failed: {add.stderr.strip()}")
    port = free_port()
    serve = ["serve", "--db", str(db), "--port", str(port)]
    if event_loop is not None:
        serve += ["--event-loop", event_loop]
    if lift_rate_limits:
        cmd = [sys.executable, "-m", "bench.serve_broker", "--lift-rate-limits", *serve]
    else:
        cmd = [sys.executable, "-m", "broker.cli", *serve]
    log = workdir / f"{tag}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(tag, port, proc, log)
    try:
        wait_port(port, proc, 30, log)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    return server


# --- the minimal relay --------------------------------------------------------------------------


def start_minimal(workdir: Path, *, uvloop: bool = False) -> Server:
    port = free_port()
    log = workdir / f"minimal{'-uvloop' if uvloop else ''}.log"
    cmd = [sys.executable, "-m", "bench.minimal_relay", "--port", str(port)]
    if uvloop:
        cmd.append("--uvloop")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server = Server("minimal", port, proc, log)
    try:
        wait_port(port, proc, 20, log)
    except BaseException:
        server.stop()
        raise
    return server


# --- websockify ---------------------------------------------------------------------------------


def websockify_version() -> str:
    try:
        from importlib.metadata import version

        return version("websockify")
    except Exception as exc:  # noqa: BLE001 - any failure means "not installed"
        raise PeerUnavailable(
            "websockify is not installed in this Python (pip install websockify)"
        ) from exc


def start_websockify(workdir: Path, target_port: int) -> Server:
    """``python -m websockify 127.0.0.1:PORT 127.0.0.1:TARGET``; it forks per connection."""
    websockify_version()
    port = free_port()
    log = workdir / "websockify.log"
    cmd = [sys.executable, "-m", "websockify", f"127.0.0.1:{port}", f"127.0.0.1:{target_port}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    server = Server("websockify", port, proc, log)
    try:
        wait_port(port, proc, 20, log)
    except BaseException:
        server.stop()
        raise
    return server


# --- MeshCentral --------------------------------------------------------------------------------

MESH_USER = "bench"
MESH_PASSWORD = "bench-password-1"


def meshcentral_dir() -> Path:
    return PEERS_DIR / "meshcentral"


def install_meshcentral(timeout: float = 300) -> str:
    """``npm install meshcentral@1.1.55`` into the scratch folder, once; returns a note."""
    folder = meshcentral_dir()
    main = folder / "node_modules" / "meshcentral" / "package.json"
    if main.exists():
        version = json.loads(main.read_text()).get("version")
        if version == MESHCENTRAL_VERSION:
            return "already installed"
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise PeerUnavailable("node/npm not found on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        result = subprocess.run(
            ["npm", "install", f"meshcentral@{MESHCENTRAL_VERSION}", "--no-audit", "--no-fund"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerUnavailable(f"npm install timed out after {timeout:.0f} s") from exc
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise PeerUnavailable(f"npm install failed ({result.returncode}): {' | '.join(lines)}")
    return f"installed in {time.monotonic() - start:.0f} s"


def start_meshcentral() -> Server:
    """Fresh data folder, the settings of shared/notes/peers.md, one account, then start."""
    folder = meshcentral_dir()
    data = folder / "meshcentral-data"
    if data.exists():
        # Keep the generated certificates (the first start spends ~20 s making them); drop
        # the databases so every run starts fresh.
        for item in data.iterdir():
            if item.suffix == ".db" or item.name.endswith(".db.bak"):
                item.unlink()
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "settings": {
            "port": port,
            "portBind": "127.0.0.1",
            "redirPort": 0,
            "mpsPort": 0,
            "WANonly": True,
            "tlsOffload": "127.0.0.1",
            "exactPorts": True,
            "noAgentUpdate": 1,
            "noServerBackup": True,
            "fastCert": True,
            "agentTimeStampServer": False,
            "user": MESH_USER,
        },
        "domains": {"": {"newAccounts": False}},
    }
    (data / "config.json").write_text(json.dumps(config, indent=2))
    node_main = ["node", "node_modules/meshcentral"]
    made = subprocess.run(
        [*node_main, "--createaccount", MESH_USER, "--pass", MESH_PASSWORD]
        + ["--email", "x@example.invalid"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if made.returncode != 0:
        raise PeerUnavailable(f"--createaccount failed: {(made.stderr or made.stdout).strip()}")
    log = PEERS_DIR / "meshcentral.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(node_main, cwd=folder, stdout=out, stderr=subprocess.STDOUT)
    server = Server("meshcentral", port, proc, log)
    try:
        wait_port(port, proc, 90, log)
        server.child_pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except BaseException:
        server.stop()
        raise
    return server
