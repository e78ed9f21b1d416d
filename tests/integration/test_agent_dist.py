"""The single-file agent, built with PyInstaller and run with an empty environment.

The build is ``packaging/build_agent.py`` exactly as ``make agent-dist`` runs it, cached under
``build/agent-cache`` by a hash of the agent's sources and the recipe, so only a changed tree is
rebuilt (a cold build is printed with its time and size). The file then runs as a customer's
machine would run it: ``env -i DISPLAY=:N rsb-agent-linux-x86_64 ...``, no Python on PATH, no
virtualenv, from a folder outside the checkout. It joins a real broker on 127.0.0.1 with the
session code on Xvfb, the customer answers yes at the terminal prompt, and a test viewer gets
the screen and types into an xterm through the bundled XTEST backend.

The code typed into the agent's own window is another test's (the window's, with xdotool).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.agent_harness import AgentProcess
from tests.integration.conftest import WAIT_UNIT, XvfbServer
from tests.integration.test_agent_e2e import (
    INSIDE_XTERM,
    Stage,
    admit,
    desktop,
    grant_control,
    screen_matches,
    stage,
    typed,
)

__all__ = ["desktop", "stage"]  # fixtures, imported by name

pytestmark = [pytest.mark.display, pytest.mark.timeout(900)]  # a cold build takes minutes

NAME = "rsb-agent-linux-x86_64"


@dataclass(frozen=True)
class Built:
    path: Path
    cached: bool
    build_seconds: float
    size: int
    sha256: str


@pytest.fixture(scope="module")
def frozen_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The built file, copied to a folder outside the checkout (as a customer's download)."""
    out = tmp_path_factory.mktemp("download")
    done = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "build_agent.py"), "--out-dir", str(out)]
        + ["--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert done.returncode == 0, (
        "building the single-file agent failed (make test installs PyInstaller with the dist "
        f"extra):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    )
    record = json.loads(done.stdout.strip().splitlines()[-1])
    built = Built(
        Path(record["path"]),
        record["cached"],
        record["build_seconds"],
        record["size"],
        record["sha256"],
    )
    print(
        f"\nsingle-file agent {built.path.name}: {built.size / 1e6:.1f} MB, "
        + ("from the build cache" if built.cached else "built")
        + f" (a cold build of this tree took {built.build_seconds:.0f} s)"
    )
    yield built
    shutil.rmtree(out, ignore_errors=True)


def _empty_env(*args: str, display: str | None = None) -> list[str]:
    """``env -i`` with only the display: no PATH, no HOME, no Python variable, no locale."""
    return ["/usr/bin/env", "-i", *([f"DISPLAY={display}"] if display else []), *args]


def test_the_file_runs_with_an_empty_environment(frozen_agent: Built, xvfb: XvfbServer) -> None:
    assert frozen_agent.path.name == NAME
    assert not frozen_agent.path.is_relative_to(REPO)
    done = subprocess.run(
        _empty_env(str(frozen_agent.path), "--version", display=xvfb.display),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60 * WAIT_UNIT,
        check=False,
    )
    assert done.returncode == 0, done
    # The version is the package's own, read from the metadata bundled in the file: the
    # version the agent reports when it joins.
    assert done.stdout.strip() == f"rsb-agent {metadata.version('remote-support-broker')}"


def _contents(path: Path) -> tuple[set[str], set[str]]:
    """(files bundled next to the code, Python modules in the file's module archive)."""
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(path))
    files = set(archive.toc)
    pyz = next(name for name in files if name.endswith(".pyz"))
    modules = set(archive.open_embedded_archive(pyz).toc)
    return files, modules


def test_the_file_carries_what_the_agent_needs_and_nothing_of_the_server(
    frozen_agent: Built,
) -> None:
    files, modules = _contents(frozen_agent.path)
    # The runtime: Python itself, Tk with its Tcl library, the X11 input backend, capture,
    # the codecs, the wire protocol, the package metadata.
    assert any(name.startswith("libpython3") for name in files), sorted(files)[:40]
    assert any("_tkinter" in name for name in files)
    assert any(name.startswith("_tcl_data/") for name in files)
    assert "agent_defaults.json" in files
    assert any(name.startswith("remote_support_broker") for name in files)
    assert any(name.startswith("certifi/") and name.endswith("cacert.pem") for name in files)
    for module in [
        "agent_client.cli",
        "agent_client.prompt_tk",
        "agent_client.inject_x11",
        "agent_client.pointer",
        "Xlib.ext.xtest",
        "Xlib.support.unix_connect",
        "mss.linux",
        "tkinter",
        "websockets.asyncio.client",
        "rsb_protocol.e2e",
        "rsb_codec.wire",
        "PIL.WebPImagePlugin",
        "numpy",
        "simplejpeg",
    ]:
        assert module in modules, module
    # Never the broker, its server stack or the test tools that share the virtualenv.
    server = {"broker", "aiohttp", "aiosqlite", "pydantic", "jwt", "argon2", "pytest"}
    assert not {m for m in modules if m.split(".")[0] in server}
    # No secret: no key, certificate request, database, token or environment file.
    risky = (".pem", ".key", ".db", ".env", ".token", ".sig")
    assert not [n for n in files if n.endswith(risky) and not n.endswith("cacert.pem")]
    assert not [n for n in files if "demo-credentials" in n or n.startswith(("var/", "certs/"))]


async def test_the_file_joins_with_the_code_and_streams_and_types(
    frozen_agent: Built, stage: Stage
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_empty_env(
            str(frozen_agent.path),
            "join",
            stage.code,
            "--broker",
            stage.agent_url,
            "--display",
            stage.xvfb.display,
            "--ui",
            "terminal",
            display=stage.xvfb.display,
        ),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd="/",
    )
    agent = AgentProcess(proc)
    try:
        await agent.wait_for("Waiting for the engineer", timeout=60)
        rita = await stage.viewer("rita")
        question = await admit(agent, rita, "Rita Reyes")
        assert f"Case:      {stage.case_number}" in "\n".join(question)
        await screen_matches(stage, rita)  # the screen, captured by the bundled mss
        await grant_control(agent, rita, "Rita Reyes")
        await rita.send_input({"type": "pointer_move", "x": INSIDE_XTERM[0], "y": INSIDE_XTERM[1]})
        await rita.send_input({"type": "type_text", "text": "frozen agent ok\n"})
        await typed(stage, "frozen agent ok\n")  # injected by the bundled XTEST backend
    finally:
        code = await agent.stop()
    assert code == 0, agent.output
    assert "Traceback" not in agent.output, agent.output
