"""Build the single-file agent for this machine's OS and architecture (``make agent-dist``).

One recipe for every platform: ``packaging/agent.spec`` run by PyInstaller, here and on the
Windows and macOS runners of ``.github/workflows/agent-dist.yml``. The file is named for what
it runs on (``rsb-agent-linux-x86_64``, ``rsb-agent-windows-x86_64.exe``, ``rsb-agent-macos-arm64``,
``rsb-agent-macos-x86_64``), the names the broker's download list understands
(``broker.release.AGENT_PLATFORMS``).

Builds are cached under ``--cache-dir`` (default ``build/agent-cache``), keyed by a hash of
everything that goes into the file: the sources of ``agent_client``, ``rsb_protocol`` and
``rsb_codec``, this recipe (spec, entry, runtime hook, this script), ``pyproject.toml``, the
baked-in defaults, the Python, PyInstaller and agent dependency versions. An unchanged tree
is copied from the cache instead of rebuilt.

Usage::

    python packaging/build_agent.py [--out-dir dist/agent] [--broker-url https://support.example]
                                    [--cache-dir build/agent-cache] [--json]

``--broker-url`` bakes in a non-secret default for ``join CODE``; nothing else is configurable,
and no token or key can be put into the file. A signature beside an older file in
``--out-dir`` is removed when the file changes: sign the new one (``rsb release sign``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent_client.join_target import EntryError, check_broker

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "agent.spec"
SOURCES = ("agent_client", "rsb_protocol", "rsb_codec")
RECIPE = (
    "packaging/agent.spec",
    "packaging/agent_entry.py",
    "packaging/rthook_certs.py",
    "packaging/build_agent.py",
    "pyproject.toml",
)
PLATFORMS = ("linux-x86_64", "windows-x86_64", "macos-arm64", "macos-x86_64")
"""Equal to ``broker.release.AGENT_PLATFORMS`` (a unit test keeps them so)."""

_OS_NAMES = {"linux": "linux", "win32": "windows", "darwin": "macos"}
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}


class BuildError(Exception):
    """The agent cannot be built as asked."""


def platform_tag(system: str = sys.platform, machine: str = platform.machine()) -> str:
    """This machine's name in the file name, e.g. ``linux-x86_64``.

    Raises:
        BuildError: an OS or architecture the download list has no name for.
    """
    os_name = next((v for k, v in _OS_NAMES.items() if system.startswith(k)), None)
    arch = _MACHINES.get(machine.lower())
    tag = f"{os_name}-{arch}"
    if os_name is None or arch is None or tag not in PLATFORMS:
        raise BuildError(f"no agent platform for {system}/{machine}; known: {', '.join(PLATFORMS)}")
    return tag


def file_name(tag: str) -> str:
    return f"rsb-agent-{tag}" + (".exe" if tag.startswith("windows-") else "")


def check_broker_url(url: str) -> str:
    """A default broker address that is only an address: never a credential.

    Raises:
        BuildError: not ``https://host[:port]`` (``http://`` only to this machine), or with
            a user name, password, query or fragment, where a secret could hide.
    """
    parts = urlsplit(url.strip())
    try:
        checked = check_broker(url)  # the agent's own rule for a broker address
    except EntryError as exc:
        if exc.key == "broker_http":
            raise BuildError("plain http is only allowed to this machine; use https://") from None
        raise BuildError(f"--broker-url must be https://host[:port], got {url[:80]!r}") from None
    if parts.username or parts.password or parts.query or parts.fragment:
        raise BuildError("--broker-url may carry no user, password, query or fragment")
    if parts.path not in ("", "/"):
        raise BuildError("--broker-url is the broker's base address, without a path")
    return checked


def _inputs() -> Iterator[Path]:
    for package in SOURCES:
        yield from sorted((ROOT / package).rglob("*.py"))
    for name in RECIPE:
        yield ROOT / name


def _agent_dependencies() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]
    names = [re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0] for spec in extras["agent"]]
    found = []
    for name in ["cryptography", "pyinstaller", "pyinstaller-hooks-contrib", "certifi", *names]:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    return found


def cache_key(tag: str, defaults: bytes) -> str:
    """The hash of everything that goes into the file (module docstring)."""
    sha = hashlib.sha256()
    for part in (tag, sys.version, *_agent_dependencies()):
        sha.update(part.encode() + b"\0")
    sha.update(defaults + b"\0")
    for path in _inputs():
        sha.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            sha.update(chunk)
    return sha.hexdigest()


def build(cache_dir: Path, tag: str, defaults: bytes) -> tuple[Path, dict[str, Any], bool]:
    """The built file in the cache, building it first if this tree was never built.

    Returns:
        (path of the file in the cache, its build record, whether it came from the cache).

    Raises:
        BuildError: PyInstaller failed.
    """
    key = cache_key(tag, defaults)
    entry = cache_dir / key[:24]
    name = file_name(tag)
    record_path = entry / "build.json"
    if (entry / name).is_file() and record_path.is_file():
        return entry / name, json.loads(record_path.read_text()), True
    shutil.rmtree(entry, ignore_errors=True)  # an entry left half-made by an interrupted run
    cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = cache_dir / f".building-{key[:24]}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "out").mkdir(parents=True)
    defaults_file = scratch / "agent_defaults.json"
    defaults_file.write_bytes(defaults)
    command = [
        *(sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN"),
        *("--distpath", str(scratch / "out"), "--workpath", str(ROOT / "build" / "pyinstaller")),
        str(SPEC),
        *("--", "--name", name, "--defaults", str(defaults_file)),
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, check=False)
    seconds = time.monotonic() - started
    built = scratch / "out" / name
    if done.returncode != 0 or not built.is_file():
        shutil.rmtree(scratch, ignore_errors=True)
        raise BuildError(f"PyInstaller failed (exit {done.returncode}); see its output above")
    record: dict[str, Any] = {
        "name": name,
        "platform": tag,
        "size": built.stat().st_size,
        "sha256": _sha256(built),
        "build_seconds": round(seconds, 1),
        "key": key,
        "python": platform.python_version(),
    }
    (scratch / "out" / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    try:
        os.replace(scratch / "out", entry)  # atomic: a concurrent build's entry stays whole
    except OSError:
        if not (entry / name).is_file():
            raise
    shutil.rmtree(scratch, ignore_errors=True)
    return entry / name, record, False


def install(built: Path, out_dir: Path) -> Path:
    """Copy the built file into ``out_dir``; a stale signature beside an older file goes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / built.name
    if target.is_file() and _sha256(target) == _sha256(built):
        return target
    partial = out_dir / f".{built.name}.partial"
    shutil.copyfile(built, partial)
    partial.chmod(0o755)
    os.replace(partial, target)
    stale = out_dir / f"{built.name}.sig"
    if stale.exists():
        stale.unlink()
        print(f"removed {stale}: it signed the previous file; sign this one with rsb release sign")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the single-file agent (PyInstaller).")
    parser.add_argument("--out-dir", default=str(ROOT / "dist" / "agent"))
    parser.add_argument("--cache-dir", default=str(ROOT / "build" / "agent-cache"))
    parser.add_argument("--broker-url", default=None, help="non-secret default for join CODE")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)
    try:
        tag = platform_tag()
        broker = check_broker_url(args.broker_url) if args.broker_url else None
        defaults = json.dumps({"broker": broker} if broker else {}, sort_keys=True).encode()
        built, record, cached = build(Path(args.cache_dir), tag, defaults)
    except BuildError as exc:
        print(f"build_agent: {exc}", file=sys.stderr)
        return 1
    target = install(built, Path(args.out_dir))
    how = "from the cache" if cached else f"built in {record['build_seconds']} s"
    print(f"{target} ({record['size'] / 1e6:.1f} MB, sha256 {record['sha256']}), {how}")
    if args.json:
        print(json.dumps({**record, "path": str(target), "cached": cached}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
