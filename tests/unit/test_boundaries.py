"""Import boundaries that carry security weight, checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, imported_packages


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=60,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_the_broker_never_loads_end_to_end_key_code() -> None:
    """The relay routes ciphertext by header; it holds no code that could decrypt it."""
    loaded = _modules_after("import broker.app, broker.cli")
    forbidden = {"rsb_protocol.e2e", "rsb_protocol.readback", "rsb_viewer.client"}
    assert not loaded & forbidden
    assert not {m for m in loaded if m.startswith("agent_client")}
    assert "rsb_protocol.framing" in loaded


def test_the_agent_installs_without_the_server_stack() -> None:
    loaded = _modules_after("import agent_client.encoder, agent_client.inject, rsb_protocol.e2e")
    assert not {m for m in loaded if m.split(".")[0] in {"aiohttp", "aiosqlite", "broker"}}


def test_the_viewer_shares_the_update_codec_not_the_agent_package() -> None:
    """The engineer's viewer and the agent meet only in the wire format (rsb_codec)."""
    loaded = _modules_after("import rsb_viewer, rsb_viewer.cli")
    assert not {m for m in loaded if m.split(".")[0] == "agent_client"}
    assert {"rsb_codec.wire", "rsb_codec.decode"} <= loaded
    for package in ("rsb_viewer", "rsb_codec"):
        assert "agent_client" not in imported_packages(package), package
