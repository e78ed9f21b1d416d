"""Pieces for end-to-end tests of the real `rsb-agent` process against the real broker.

- `TcpProxy` sits between the agent and the broker: it records every byte the agent sends (so a
  test can prove what reached the broker before consent) and can cut the connection
  mid-stream, as a dropped network would.
- `AgentProcess` runs `rsb-agent` as a child with `--ui terminal`: the test reads its prompt
  from stdout and types the customer's answers and commands into its stdin.
- `client_frames` turns the recorded bytes back into WebSocket frames with the websockets
  library's own parser (the agent masks what it sends; the broker sees the unmasked payload).

Everything here is async: the broker runs in the test's event loop, so nothing may block it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from tests.conftest import REPO
from tests.integration.conftest import WAIT_UNIT, XvfbServer

T = TypeVar("T")

POLL = 0.02


async def eventually(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll `probe` on the event loop until it returns something other than None or False.

    Raises:
        TimeoutError: Not within `timeout` seconds (scaled by WAIT_UNIT).
    """
    deadline = asyncio.get_running_loop().time() + timeout * WAIT_UNIT
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {timeout * WAIT_UNIT:.1f}s waiting for {what}")
        await asyncio.sleep(POLL)


async def eventually_async(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float, what: str
) -> T:
    """`eventually` for a probe that must await (an HTTP call, a subprocess)."""
    deadline = asyncio.get_running_loop().time() + timeout * WAIT_UNIT
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {timeout * WAIT_UNIT:.1f}s waiting for {what}")
        await asyncio.sleep(POLL)


# --- TCP proxy --------------------------------------------------------------------------------


@dataclass
class Link:
    """One proxied connection: what the client sent, and both transports to cut."""

    sent: bytearray = field(default_factory=bytearray)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """127.0.0.1:<port> -> 127.0.0.1:<target>, recording client bytes, cuttable."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._server: asyncio.Server | None = None
        self.links: list[Link] = []
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link()
        self.links.append(link)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        link.writers += [writer, up_writer]
        link.tasks += [
            asyncio.create_task(self._pump(reader, up_writer, link.sent)),
            asyncio.create_task(self._pump(up_reader, writer, None)),
        ]

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray | None
    ) -> None:
        try:
            while data := await reader.read(65536):
                if record is not None:
                    record += data
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    def websockets(self) -> list[Link]:
        """The links that carried a WebSocket (the agent's join request is plain HTTP)."""
        return [link for link in self.links if link.sent.startswith(b"GET /ws/")]

    def cut(self) -> None:
        """Drop every open connection at once, without a close handshake (a dead network)."""
        for link in self.links:
            for writer in link.writers:
                writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = [task for link in self.links for task in link.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def client_frames(stream: bytes) -> list[Frame]:
    """Parse what a WebSocket client sent: skip the HTTP upgrade, then unmask every frame.

    A frame cut short by the end of the recording (the connection was cut) is left out.
    """
    head, sep, rest = stream.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"GET "), "not a WebSocket upgrade"
    reader = StreamReader()
    reader.feed_data(rest)
    reader.feed_eof()
    frames: list[Frame] = []
    while True:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
            continue
        except EOFError:
            return frames
        return frames  # needs more data than was recorded


def data_frames(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.opcode in (Opcode.TEXT, Opcode.BINARY)]


# --- the agent process ------------------------------------------------------------------------


def agent_command() -> list[str]:
    """The installed `rsb-agent` console script next to this interpreter."""
    script = Path(sys.executable).with_name("rsb-agent")
    assert script.exists(), f"{script} missing: run `make .venv/.test-installed`"
    return [str(script)]


class AgentProcess:
    """`rsb-agent` as a child process whose terminal the test plays."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.questions = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, args: list[str], env: dict[str, str] | None = None) -> AgentProcess:
        proc = await asyncio.create_subprocess_exec(
            *agent_command(),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=REPO,
            # English prompts whatever the machine's locale: the tests read the agent's words.
            env={**(env or os.environ), "PYTHONUNBUFFERED": "1", "LANGUAGE": "en"},
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_for(self, text: str, *, count: int = 1, timeout: float = 15) -> int:
        """Wait until `text` appears in `count` lines; returns the index of the last one."""
        deadline = asyncio.get_running_loop().time() + timeout * WAIT_UNIT
        while True:
            hits = [i for i, line in enumerate(self.lines) if text in line]
            if len(hits) >= count:
                return hits[count - 1]
            if self.proc.returncode is not None and self._reader.done():
                raise AssertionError(f"agent exited ({self.proc.returncode}):\n{self.output}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"agent never printed {text!r} x{count}:\n{self.output}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def next_question(self) -> list[str]:
        """Wait for the next consent question and return its lines (not answered yet)."""
        index = await self.wait_for("Allow? Type y or n", count=self.questions + 1)
        self.questions += 1
        start = max(i for i in range(index) if "asks for permission" in self.lines[i])
        return self.lines[start:index]

    async def answer(self, reply: str) -> list[str]:
        """Wait for the next question, answer it with `reply`; returns the question."""
        question = await self.next_question()
        await self.type(reply)
        return question

    async def type(self, line: str) -> None:
        """The customer types `line` and Enter."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    async def stop(self) -> int:
        """End the session with the `e` key; stop the process by its PID if it lingers."""
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.type("e")
            try:
                await asyncio.wait_for(self.proc.wait(), 10 * WAIT_UNIT)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return self.proc.returncode if self.proc.returncode is not None else -1


# --- the X display ----------------------------------------------------------------------------

CLICK_RECORDER = """
import sys
from Xlib import X, display
d = display.Display(sys.argv[1])
screen = d.screen()
x, y, w, h = map(int, sys.argv[2:6])
win = screen.root.create_window(
    x, y, w, h, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
    background_pixel=0xFF8800, override_redirect=True,
    event_mask=X.ButtonPressMask | X.StructureNotifyMask,
)
win.map()
d.flush()
with open(sys.argv[6], "a") as out:
    while True:
        event = d.next_event()
        if event.type == X.MapNotify:
            print("mapped", flush=True)
        elif event.type == X.ButtonPress:
            out.write(f"{event.detail} {event.root_x} {event.root_y}\\n")
            out.flush()
"""


async def start_click_recorder(
    xvfb: XvfbServer, box: tuple[int, int, int, int], record: Path
) -> asyncio.subprocess.Process:
    """An orange window at `box` (x, y, w, h) that appends "button x y" to `record` per click."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLICK_RECORDER,
        xvfb.display,
        *map(str, box),
        str(record),
        stdout=asyncio.subprocess.PIPE,
        env=xvfb.env,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10 * WAIT_UNIT)
    assert line.strip() == b"mapped", line
    return proc


def grab_screen(display: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The whole X screen as (H, W, 4) BGRA, straight from mss (not through agent code)."""
    import mss

    with mss.MSS(display=display) as sct:
        shot = sct.grab(sct.monitors[0])
        return np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4).copy()


def psnr(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Peak signal-to-noise ratio of the colour channels, in dB (inf when identical)."""
    assert a.shape[:2] == b.shape[:2], (a.shape, b.shape)
    diff = a[..., :3].astype(np.float64) - b[..., :3].astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
