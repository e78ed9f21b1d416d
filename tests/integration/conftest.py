"""Fixtures that give a test its own headless X server and, when asked, an xterm on it.

Every process started here is stopped by its PID at teardown. Waits poll a condition against a
deadline built from one scalable unit (`WAIT_UNIT`), never a bare long sleep.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

# One scalable time unit: slow CI machines raise RSB_TEST_TIME_SCALE instead of editing tests.
WAIT_UNIT = 1.0 * float(os.environ.get("RSB_TEST_TIME_SCALE", "1"))
POLL_INTERVAL = 0.02

XVFB_WIDTH = 1280
XVFB_HEIGHT = 800


def wait_until(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll `probe` until it returns something other than None or False.

    Args:
        probe: Called repeatedly; its first result other than None or False is returned.
        timeout: Seconds, before scaling by WAIT_UNIT.
        what: Describes the condition for the failure message.

    Returns:
        The first result of `probe` other than None or False.

    Raises:
        TimeoutError: The condition did not hold before the deadline.
    """
    deadline = time.monotonic() + timeout * WAIT_UNIT
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout * WAIT_UNIT:.1f}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one child by its PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3 * WAIT_UNIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class XvfbServer:
    """A running Xvfb: its display name, geometry and process."""

    display: str
    width: int
    height: int
    proc: subprocess.Popen[bytes]
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The environment for a child process that should talk to this display."""
        return {**os.environ, "DISPLAY": self.display}

    def run(self, *args: str) -> str:
        """Run a short X client (xdotool, xwininfo) against this display and return stdout."""
        done = subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=10 * WAIT_UNIT, check=True
        )
        return done.stdout


def start_xvfb(width: int = XVFB_WIDTH, height: int = XVFB_HEIGHT) -> XvfbServer:
    """Start Xvfb on a free display number, chosen by the server itself via -displayfd.

    Raises:
        pytest.fail.Exception: Xvfb is not installed or did not report its display.
    """
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is not installed: run `make test`, which installs the Debian packages")
    read_fd, write_fd = os.pipe()
    # -noreset: by default Xvfb resets whenever its last client disconnects, and a client that
    # connects during the reset (xterm, right after a short-lived xdotool) fails to open the
    # display.
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24"]
        + ["-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        number = _read_display_number(read_fd, timeout=10 * WAIT_UNIT)
    except BaseException:
        _stop(proc)
        raise
    finally:
        os.close(read_fd)
    return XvfbServer(display=f":{number}", width=width, height=height, proc=proc)


def _read_display_number(fd: int, timeout: float) -> int:
    """Read the newline-terminated display number Xvfb writes once it accepts connections."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail("Xvfb did not report a display number in time")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                pytest.fail("Xvfb exited before reporting a display number")
            data += chunk
    return int(data.strip())


@pytest.fixture
def xvfb() -> Iterator[XvfbServer]:
    """A fresh 1280x800x24 Xvfb per test, so keymap and window state never leak across tests."""
    server = start_xvfb()
    try:
        yield server
    finally:
        for child in reversed(server.children):
            _stop(child)
        _stop(server.proc)


@dataclass(frozen=True)
class XtermWindow:
    """An xterm mapped on a test display."""

    window_id: int
    proc: subprocess.Popen[bytes]


def start_xterm(
    server: XvfbServer,
    command: list[str],
    *,
    log_dir: Path,
    title: str = "rsb-test-xterm",
    geometry: str = "80x24+0+0",
) -> XtermWindow:
    """Start an xterm with a known font and geometry and wait until its window is viewable.

    The process is registered with `server`, so the `xvfb` fixture stops it by PID.

    Args:
        server: The display to open the xterm on.
        command: The program to run inside the terminal (after `-e`).
        log_dir: Where xterm's own output goes; shown if it exits early.
        title: A unique window title, used to find the window.
        geometry: xterm's -geometry value (columns x rows + x + y).

    Returns:
        The xterm's window id and process.
    """
    log_path = log_dir / f"{title}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["xterm", "-fa", "DejaVu Sans Mono", "-fs", "10", "-geometry", geometry]
            + ["-T", title, "-e", *command],
            # A UTF-8 locale puts xterm in UTF-8 mode, so typed 'é€ñ' reach the pty as UTF-8.
            env={**server.env, "LC_ALL": "C.UTF-8"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server.children.append(proc)

    def viewable_window() -> int | None:
        if proc.poll() is not None:
            output = log_path.read_text(errors="replace")
            pytest.fail(f"xterm exited early with status {proc.returncode}: {output}")
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
            env=server.env,
            capture_output=True,
            text=True,
            check=False,
        )
        ids = found.stdout.split()
        return int(ids[0]) if ids else None

    window_id = wait_until(viewable_window, timeout=10, what=f"xterm window {title!r} to map")
    return XtermWindow(window_id=window_id, proc=proc)


@pytest.fixture
def xterm_cat(xvfb: XvfbServer, tmp_path: Path) -> tuple[XtermWindow, Path]:
    """An xterm at +0+0 running `cat > FILE`: typed lines land in FILE as the tty passes them."""
    target = tmp_path / "typed.txt"
    # `stty -ixon` keeps Control-S/Q from freezing the tty if a modifier test sends them.
    window = start_xterm(xvfb, ["sh", "-c", f"stty -ixon; exec cat > {target}"], log_dir=tmp_path)
    return window, target
