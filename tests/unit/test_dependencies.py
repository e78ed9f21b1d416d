"""What the project declares and what CI installs stay above the releases with advisories.

``pyproject.toml`` states minimum versions; ``requirements/ci-lock.txt`` pins what ``make test``
installs (as pip constraints), so a CI run is reproducible and a vulnerable release cannot slip
in through a loose range. The floors below are the first releases past the advisories we know
of; raise one when a new advisory is published.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import imported_packages

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "ci-lock.txt"

ADVISORY_FLOORS = {
    # GHSA-cq5v-8q36-5273 (C parser heap read), GHSA-mfx4-hv73-q22v (smuggling via upgrade).
    "aiohttp": Version("3.14.3"),
    # GHSA-g6cj-pr64-35w5 (PKCS#7 Bleichenbacher oracle), CVE-2026-26007 before it.
    "cryptography": Version("50.0.0"),
    # The 2026 batch of heap out-of-bounds writes and decompression bombs below 12.3.0.
    "pillow": Version("12.3.0"),
}


def _project() -> dict[str, object]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        project: dict[str, object] = tomllib.load(handle)["project"]
    return project


def _requirements(group: str | None) -> list[Requirement]:
    project = _project()
    if group is None:
        texts = project["dependencies"]
    else:
        extras = project["optional-dependencies"]
        assert isinstance(extras, dict)
        texts = extras[group]
    assert isinstance(texts, list)
    return [Requirement(text) for text in texts]


def _all_declared() -> list[Requirement]:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    found = _requirements(None)
    for group in extras:
        found += _requirements(group)
    return found


def _minimum(requirement: Requirement) -> Version | None:
    lows = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(lows) if lows else None


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"the lock pins exact versions: {line}"
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def test_every_declared_minimum_is_above_the_advisory_floor() -> None:
    checked = 0
    for requirement in _all_declared():
        floor = ADVISORY_FLOORS.get(canonicalize_name(requirement.name))
        if floor is None:
            continue
        minimum = _minimum(requirement)
        assert minimum is not None and minimum >= floor, f"{requirement} admits releases < {floor}"
        checked += 1
    assert checked >= len(ADVISORY_FLOORS)


def test_the_ci_lock_pins_every_floored_package_above_its_floor() -> None:
    pins = _lock()
    for name, floor in ADVISORY_FLOORS.items():
        assert name in pins, f"{name} missing from {LOCK.name}"
        assert pins[name] >= floor, f"{LOCK.name} pins {name} {pins[name]} < {floor}"


def test_what_is_installed_is_what_the_lock_pins() -> None:
    # make test installs with the lock as constraints: a mismatch means the lock is stale.
    pins = _lock()
    for name in [*ADVISORY_FLOORS, "pytest", "pydantic", "pyjwt", "argon2-cffi"]:
        assert Version(version(name)) == pins[name], f"{name}: installed {version(name)}"


def test_the_base_install_carries_nothing_only_the_server_needs() -> None:
    base = {canonicalize_name(r.name) for r in _requirements(None)}
    assert base == {"cryptography"}, "every agent installs the base dependencies"


def test_the_server_extra_has_no_package_the_broker_never_imports() -> None:
    imported: set[str] = set()
    for path in (ROOT / "broker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    server = {canonicalize_name(r.name) for r in _requirements("server")}
    assert "websockets" not in imported
    assert "websockets" not in server
    # Each server package is imported under its own name or a known module name.
    module_of = {"pyjwt": "jwt", "argon2-cffi": "argon2", "prometheus-client": "prometheus_client"}
    for name in server - {"tzdata"}:  # tzdata is data zoneinfo reads, never imported
        assert module_of.get(name, name) in imported, f"the broker never imports {name}"


def test_the_agent_extra_holds_everything_the_shared_codec_imports() -> None:
    # rsb_codec runs on the customer's machine and in the engineer's viewer, and both install
    # the agent extra; the base install (cryptography only) must not need numpy or Pillow.
    third_party = imported_packages("rsb_codec") - set(sys.stdlib_module_names) - {"rsb_codec"}
    module_of = {"pillow": "PIL"}
    names = {canonicalize_name(r.name) for r in _requirements("agent")}
    agent = {module_of.get(name, name) for name in names}
    assert third_party, "the codec decodes images with third-party libraries"
    assert third_party <= agent, f"not in the agent extra: {third_party - agent}"
