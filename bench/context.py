"""What every part of a benchmark run shares: options, scratch folder, report, broker sessions."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.api import Api
from bench.report import Report
from bench.servers import Server


@dataclass
class Options:
    quick: bool = False
    rounds: int = 3
    window: float = 2.0
    """Seconds per measured window."""
    before_tree: Path | None = None
    """An export of the broker before the frame-path change, measured alongside it."""
    meshcentral: bool = True


@dataclass
class Context:
    options: Options
    work: Path
    report: Report = field(default_factory=Report)
    log_lines: list[str] = field(default_factory=list)

    def log(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        self.log_lines.append(line)
        print(line, flush=True)


_batches = itertools.count(1)


def broker_sessions(
    server: Server, count: int, viewers: int = 1, *, prefix: str = "eng"
) -> list[dict[str, Any]]:
    """``count`` joined sessions made through the broker's HTTP API, for the load generator.

    Each session gets ``viewers`` engineer tokens (distinct engineers, since one engineer has
    one slot per session); engineers are shared between sessions, and named apart from those
    of earlier calls on the same broker.
    """
    prefix = f"{prefix}{next(_batches)}x"

    async def make() -> list[dict[str, Any]]:
        async with Api(server.port) as api:
            tokens = await api.engineers(max(1, viewers), prefix=prefix)
            sessions = await api.sessions(tokens[0], count)
        return [
            {"id": s.id, "agent_token": s.agent_token, "viewer_tokens": tokens[:viewers]}
            for s in sessions
        ]

    return asyncio.run(make())
