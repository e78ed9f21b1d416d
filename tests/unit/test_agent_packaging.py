"""The single-file agent's recipe (``packaging/``), without building it.

``tests/integration/test_agent_dist.py`` builds and runs the real file; these check the rules
around it: its names match what the broker's download list understands, the default broker
baked in can only be an address, and the cache key follows the agent's sources.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from broker import release
from tests.conftest import REPO


def _load(name: str) -> ModuleType:
    # packaging/ is no package (its name is taken by the library): load the files themselves.
    spec = importlib.util.spec_from_file_location(
        f"rsb_packaging_{name}", REPO / "packaging" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build_agent = _load("build_agent")
agent_entry = _load("agent_entry")


def test_the_build_names_every_platform_the_broker_lists() -> None:
    assert build_agent.PLATFORMS == release.AGENT_PLATFORMS
    for tag in build_agent.PLATFORMS:
        assert release.agent_platform(build_agent.file_name(tag)) == tag


@pytest.mark.parametrize(
    ("system", "machine", "tag"),
    [
        ("linux", "x86_64", "linux-x86_64"),
        ("win32", "AMD64", "windows-x86_64"),
        ("darwin", "arm64", "macos-arm64"),
        ("darwin", "x86_64", "macos-x86_64"),
    ],
)
def test_the_platform_tag_of_each_runner(system: str, machine: str, tag: str) -> None:
    assert build_agent.platform_tag(system, machine) == tag


@pytest.mark.parametrize(("system", "machine"), [("linux", "aarch64"), ("freebsd13", "amd64")])
def test_a_platform_without_a_download_name_is_refused(system: str, machine: str) -> None:
    with pytest.raises(build_agent.BuildError, match="no agent platform"):
        build_agent.platform_tag(system, machine)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@support.example",
        "https://support.example/?token=eyJhbGciOi",
        "https://support.example/#1234567890",
        "https://support.example/j",
        "http://support.example",
        "ftp://support.example",
        "support.example",
    ],
)
def test_the_baked_in_broker_can_only_be_an_address(url: str) -> None:
    with pytest.raises(build_agent.BuildError):
        build_agent.check_broker_url(url)


def test_a_plain_address_is_accepted() -> None:
    assert build_agent.check_broker_url("https://support.example/") == "https://support.example"
    assert build_agent.check_broker_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_the_cache_key_follows_the_defaults_and_the_sources() -> None:
    tag = "linux-x86_64"
    empty = build_agent.cache_key(tag, b"{}")
    assert empty == build_agent.cache_key(tag, b"{}")
    assert empty != build_agent.cache_key(tag, json.dumps({"broker": "https://x.example"}).encode())
    assert empty != build_agent.cache_key("windows-x86_64", b"{}")
    inputs = {p.relative_to(REPO).as_posix() for p in build_agent._inputs()}
    assert {"agent_client/cli.py", "rsb_protocol/e2e.py", "rsb_codec/wire.py"} <= inputs
    assert {"packaging/agent.spec", "packaging/agent_entry.py"} <= inputs
    assert not {p for p in inputs if p.startswith(("broker/", "tests/", "var/"))}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["join", "123 456 7890"], ["join", "123 456 7890", "--broker", "https://s.example"]),
        (
            ["join", "1234567890", "--broker", "https://mine"],
            ["join", "1234567890", "--broker", "https://mine"],
        ),
        (
            ["join", "1234567890", "--broker=https://mine"],
            ["join", "1234567890", "--broker=https://mine"],
        ),
        (
            ["join", "https://other.example/j#1234567890"],
            ["join", "https://other.example/j#1234567890"],
        ),
        (["attach", "--broker", "https://x"], ["attach", "--broker", "https://x"]),
        (["--version"], ["--version"]),
        ([], []),
    ],
)
def test_the_default_broker_fills_only_a_join_without_one(
    argv: list[str], expected: list[str]
) -> None:
    assert agent_entry.with_default_broker(argv, "https://s.example") == expected
    assert agent_entry.with_default_broker(argv, None) == argv


def test_bundled_defaults_are_read_and_bad_ones_ignored(tmp_path: Path) -> None:
    assert agent_entry.load_defaults(str(tmp_path)) == {}
    (tmp_path / agent_entry.DEFAULTS_FILE).write_text('{"broker": "https://s.example", "n": 1}')
    assert agent_entry.load_defaults(str(tmp_path)) == {"broker": "https://s.example"}
    (tmp_path / agent_entry.DEFAULTS_FILE).write_text("[1, 2]")
    assert agent_entry.load_defaults(str(tmp_path)) == {}
    (tmp_path / agent_entry.DEFAULTS_FILE).write_text("not json")
    assert agent_entry.load_defaults(str(tmp_path)) == {}
