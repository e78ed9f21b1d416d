"""Fixtures for the whole-story browser test: an X display with a known picture and a real agent.

The display is a fresh Xvfb (``tests.integration.conftest``) with a solid root colour, a small Tk
window of four colour blocks at a fixed place, and an xterm running ``cat > FILE`` at the top
left, so the test can check what the console draws (pixel colours) and what it types (the file).

The agent is the real ``agent_client`` in its own process, capturing that display with mss and
injecting with XTEST, with its terminal prompt on a pipe the test writes answers to. The customer
page spends the session code (``POST /api/v1/join``) and shows the command that starts the agent
with the agent token it received (``rsb-agent attach``): the code is single use, so the agent
attaches with that token rather than joining with the code again.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.conftest_pages import WAIT_S
from tests.integration.conftest import (
    XtermWindow,
    XvfbServer,
    start_xterm,
    wait_until,
)

ROOT_COLOUR = (0x30, 0x48, 0x70)
"""The root window's solid colour (``xsetroot -solid``): whatever no window covers."""

BLOCKS_ORIGIN = (760, 120)
"""Top-left corner of the Tk window of colour blocks on the X screen."""
BLOCK_SIZE = 160
BLOCKS: tuple[tuple[int, int, tuple[int, int, int]], ...] = (
    (0, 0, (0xE0, 0x20, 0x20)),
    (1, 0, (0x20, 0xC0, 0x40)),
    (0, 1, (0x20, 0x40, 0xE0)),
    (1, 1, (0xF0, 0xD0, 0x20)),
)
"""(column, row, RGB) of each block in the pattern window."""

_PATTERN_TITLE = "rsb-story-pattern"
_PATTERN_SCRIPT = """
import sys, tkinter
x, y, size, title = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
blocks = [tuple(part.split(":")) for part in sys.argv[5:]]
root = tkinter.Tk()
root.title(title)
root.geometry(f"{2 * size}x{2 * size}+{x}+{y}")
for col, row, colour in blocks:
    frame = tkinter.Frame(root, width=size, height=size, bg=colour, bd=0, highlightthickness=0)
    frame.place(x=int(col) * size, y=int(row) * size)
root.mainloop()
"""


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def block_centre(column: int, row: int) -> tuple[int, int]:
    """Screen coordinates of the middle of one colour block."""
    x0, y0 = BLOCKS_ORIGIN
    return x0 + column * BLOCK_SIZE + BLOCK_SIZE // 2, y0 + row * BLOCK_SIZE + BLOCK_SIZE // 2


@dataclass
class StoryDisplay:
    """The X display of the story: its server, the xterm and the file the xterm writes."""

    x: XvfbServer
    xterm: XtermWindow
    typed: Path

    def typed_text(self) -> str:
        return self.typed.read_text(errors="replace") if self.typed.exists() else ""

    def pointer(self) -> tuple[int, int]:
        """Where the X pointer is now (``xdotool getmouselocation``)."""
        fields = dict(
            item.split(":", 1) for item in self.x.run("xdotool", "getmouselocation").split()
        )
        return int(fields["x"]), int(fields["y"])


@pytest.fixture
def story_display(xvfb: XvfbServer, tmp_path: Path) -> StoryDisplay:
    xvfb.run("xsetroot", "-solid", _hex(ROOT_COLOUR))
    x0, y0 = BLOCKS_ORIGIN
    pattern = subprocess.Popen(
        [sys.executable, "-c", _PATTERN_SCRIPT, str(x0), str(y0), str(BLOCK_SIZE), _PATTERN_TITLE]
        + [f"{col}:{row}:{_hex(rgb)}" for col, row, rgb in BLOCKS],
        env=xvfb.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    xvfb.children.append(pattern)

    def mapped() -> bool:
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{_PATTERN_TITLE}$"],
            env=xvfb.env,
            capture_output=True,
            text=True,
            check=False,
        )
        return bool(found.stdout.split())

    wait_until(mapped, timeout=10, what="the colour-block window to map")
    typed = tmp_path / "typed.txt"
    xterm = start_xterm(
        xvfb, ["sh", "-c", f"stty -ixon; exec cat > {typed}"], log_dir=tmp_path, title="rsb-story"
    )
    return StoryDisplay(xvfb, xterm, typed)


@dataclass
class AgentProcess:
    """A running agent whose terminal prompt the test reads and answers."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @classmethod
    def attach(cls, display: XvfbServer, *, broker: str, token: str) -> AgentProcess:
        """Run the command the customer page shows: ``RSB_AGENT_TOKEN=... rsb-agent attach``.

        The token travels in the environment, as on the page, never in argv (visible to every
        local user in ``ps``). The terminal prompt reads the test's answers from stdin.
        """
        # LANGUAGE: English prompts whatever the machine's locale (the tests read the words).
        env = {**display.env, "RSB_AGENT_TOKEN": token, "PYTHONUNBUFFERED": "1", "LANGUAGE": "en"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent_client.cli", "attach", "--broker", broker]
            + ["--display", display.display, "--ui", "terminal"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        agent = cls(proc)
        agent.reader = threading.Thread(target=agent._read, daemon=True)
        agent.reader.start()
        return agent

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def expect(self, text: str, *, after: int = 0) -> int:
        """Wait until a line from index `after` on contains `text`; return the next index."""
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            for index in range(after, len(self.lines)):
                if text in self.lines[index]:
                    return index + 1
            if self.proc.poll() is not None:
                raise AssertionError(f"the agent exited ({self.proc.returncode}):\n{self.output}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the agent never printed {text!r}:\n{self.output}")
            await asyncio.sleep(0.05)

    def answer(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """Stop the process by its PID if it still runs, then close its pipes."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=WAIT_S)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    """Agents a test starts are stopped by PID at teardown."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


__all__ = [
    "BLOCKS",
    "ROOT_COLOUR",
    "AgentProcess",
    "StoryDisplay",
    "agents",
    "block_centre",
    "story_display",
]
