"""Drive one ``bench.loadgen`` process from the orchestrator and sample CPU around its windows.

The load generator prints JSON lines; a reader thread queues them so every wait has a
deadline. The relay's CPU (and the generator's own, to show which side was the bottleneck) is
read exactly over the measured window, between ``window_start`` and ``window_end``.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from typing import IO, Any

from bench.servers import REPO, CpuSampler


class LoadGenError(RuntimeError):
    pass


class LoadGen:
    """One load-generator process with its sessions connected, ready for windows."""

    def __init__(self, spec: dict[str, Any], *, setup_timeout: float = 300.0) -> None:
        self.spec = spec
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        self._send(json.dumps(spec))
        ready = self._expect("ready", setup_timeout)
        self.connections = int(ready.get("connections", 0))
        self.setup_seconds = float(self._expect("setup_seconds", 10).get("seconds", 0.0))

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            line = line.strip()
            if line.startswith("{"):
                self._events.put(json.loads(line))
        self._events.put(None)

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip())
            del self._stderr[:-20]

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _expect(self, name: str, timeout: float) -> dict[str, Any]:
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise LoadGenError(f"load generator: no {name!r} within {timeout:.0f} s") from None
        if event is None or event.get("event") != name:
            self.stop()
            detail = " | ".join(self._stderr[-5:])
            raise LoadGenError(f"load generator: expected {name!r}, got {event}: {detail}")
        return event

    def window(self, relay_pid: int | None, timeout: float = 120.0) -> dict[str, Any]:
        """Measure one window; adds ``relay_cpu`` and ``gen_cpu`` (fractions of one core)."""
        relay = CpuSampler(relay_pid) if relay_pid else None
        gen = CpuSampler(self.proc.pid)
        self._send("run")
        self._expect("window_start", timeout)
        if relay:
            relay.start()
        gen.start()
        result = dict(self._expect("window_end", timeout)["result"])
        result["relay_cpu"] = relay.stop() if relay else None
        result["gen_cpu"] = gen.stop()
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("stop")
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
