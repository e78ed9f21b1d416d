"""Import boundaries: the ones that carry security weight, checked in a fresh interpreter, and
the layering of issue 12 (no circles, services below the web layer, pure cores free of I/O),
checked on the import graph read from the source (``tests/import_graph.py``).
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys

from tests import import_graph
from tests.conftest import REPO, imported_packages
from tests.import_graph import Graph, chain_to, find_cycle, under


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


# --- Layering (issue 12) ------------------------------------------------------------------------

DOMAIN = ("broker.sessions", "broker.auth", "broker.audit", "broker.store")
"""Services, stores and their rules: called with plain arguments, never with a request."""

EDGE: frozenset[str] = frozenset()
"""Domain modules allowed to reach the web layer: none (their HTTP routes live in
``broker/api/*_routes.py``, where request models become plain arguments)."""

WEB_LAYER = (
    *("aiohttp", "pydantic", "broker.appkeys", "broker.api", "broker.relay"),
    *("broker.app", "broker.web", "broker.cli", "broker.services"),
)

PURE_CORES = frozenset(
    {
        *("broker.errors", "broker.types", "broker.clock"),
        *("broker.sessions.cases", "broker.sessions.sla", "broker.sessions.codes"),
        *("broker.sessions.machine", "broker.sessions.participants"),
        *("broker.audit.chain", "broker.audit.checkpoint", "broker.audit.actions"),
        *("broker.store.errors",),
        *("broker.auth.roles", "broker.auth.tokens", "broker.auth.keys", "broker.auth.bearer"),
        *("broker.auth.ratelimit", "broker.auth.revocation", "broker.relay.flow"),
        *("agent_client.consent", "agent_client.session_rules", "agent_client.tiles"),
        *("rsb_codec.wire", "rsb_codec.frame", "rsb_codec.decode"),
        *("rsb_viewer.session", "rsb_viewer.screen"),
    }
)
"""Modules that do no I/O, read no clock and write no logs (docs/architecture.md, "Pure cores,
thin shells"), with every ``rsb_protocol`` module but its generator. They import only each
other."""

GENERATORS = frozenset({"rsb_protocol.wire_js"})
"""``render`` is pure, but its command line writes ``web/js/wire.js``; no core imports it."""

IO = frozenset(
    {
        *("aiohttp", "aiosqlite", "sqlite3", "asyncio", "uvloop", "websockets", "socket", "ssl"),
        *("selectors", "http", "urllib", "subprocess", "threading", "multiprocessing"),
        *("concurrent", "time", "logging", "pathlib", "shutil", "tempfile"),
        *("mss", "Xlib", "pynput", "tkinter"),
    }
)
"""Event loops, sockets, databases, processes and threads, the clock, logs, files, the desktop."""

PURE_EXCEPTIONS = frozenset({("rsb_protocol.handshake", "logging")})
"""``handshake_logger`` puts a token-blanking filter on a client library's logger; it logs
nothing itself."""

CLOCK_READS = frozenset({"now", "utcnow", "today"})


@functools.cache
def repo_graph() -> Graph:
    return import_graph.build(REPO)


def _pure(graph: Graph) -> set[str]:
    return {m for m in graph if m in PURE_CORES or under("rsb_protocol")(m)} - GENERATORS


def circle(graph: Graph) -> str | None:
    cycle = find_cycle(graph)
    return None if cycle is None else " -> ".join(cycle)


def layer_violations(graph: Graph) -> list[str]:
    """Import chains from a domain module, other than the edge, up into the web layer."""
    found = []
    for module in sorted(m for m in graph if under(*DOMAIN)(m) and m not in EDGE):
        chain = chain_to(graph, module, under(*WEB_LAYER))
        if chain is not None:
            found.append(" -> ".join(chain))
    return found


def purity_violations(graph: Graph) -> list[str]:
    """Import chains from a pure core to an I/O module or to a module that is not pure."""
    pure = _pure(graph)
    allowed = {m: graph[m] - {b for a, b in PURE_EXCEPTIONS if a == m} for m in graph}
    found = []
    for module in sorted(pure):
        chain = chain_to(allowed, module, lambda m: m in IO or (m in graph and m not in pure))
        if chain is not None:
            found.append(" -> ".join(chain))
    return found


def clock_reads(source: str) -> list[str]:
    calls = [
        (node.lineno, node.func.attr)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_READS
    ]
    return [f"line {line}: .{name}()" for line, name in sorted(calls)]


def _source(module: str) -> str:
    path = REPO / (module.replace(".", "/") + ".py")
    return (path if path.exists() else path.with_suffix("") / "__init__.py").read_text()


def _with(graph: Graph, module: str, *imports: str) -> dict[str, frozenset[str]]:
    return {**graph, module: graph.get(module, frozenset()) | set(imports)}


def test_the_modules_import_each_other_in_no_circle() -> None:
    """Counting type-only imports and imports inside functions: no circle may hide in either."""
    assert circle(repo_graph()) is None


def test_services_and_stores_never_reach_the_web_layer() -> None:
    """``broker.sessions/auth/audit/store`` take plain arguments: no aiohttp, pydantic models or
    app keys below the handlers, not even through another module."""
    graph = repo_graph()
    assert EDGE <= set(graph)
    assert len([m for m in graph if under(*DOMAIN)(m) and m not in EDGE]) >= 20
    assert layer_violations(graph) == []


def test_pure_cores_import_no_io_and_no_shell() -> None:
    graph = repo_graph()
    assert PURE_CORES <= set(graph), PURE_CORES - set(graph)  # a renamed core would pass unseen
    assert purity_violations(graph) == []


def test_pure_cores_read_no_clock() -> None:
    """The caller passes ``now`` in; a core never asks ``datetime.now()`` or ``date.today()``."""
    reads = {m: clock_reads(_source(m)) for m in sorted(_pure(repo_graph()))}
    assert {module: found for module, found in reads.items() if found} == {}


# Each contract, shown to fail: the repository's graph with one import added.


def test_a_circle_is_found_and_named() -> None:
    assert circle({"a": frozenset({"b", "os"}), "b": frozenset({"c"}), "c": frozenset({"a"})}) == (
        "a -> b -> c -> a"
    )
    assert circle({"a": frozenset({"b"}), "b": frozenset(), "c": frozenset({"a", "b"})}) is None
    # The circle issue 12 names: appkeys needed Services (for a type), services needed Clock.
    graph = _with(repo_graph(), "broker.services", "broker.appkeys")
    assert circle(graph) == "broker.appkeys -> broker.services -> broker.appkeys"


def test_a_service_reaching_the_web_layer_is_reported_with_its_chain() -> None:
    graph = _with(repo_graph(), "broker.sessions.cases", "broker.appkeys")
    assert "broker.sessions.cases -> broker.appkeys" in layer_violations(graph)
    # Indirectly too: everything that imports the rules module inherits the violation.
    assert (
        "broker.sessions.case_service -> broker.sessions.cases -> broker.appkeys"
        in layer_violations(graph)
    )
    graph = _with(repo_graph(), "broker.store.records", "pydantic")
    assert "broker.store.records -> pydantic" in layer_violations(graph)


def test_a_pure_core_doing_io_or_importing_a_shell_is_reported() -> None:
    graph = _with(repo_graph(), "broker.relay.flow", "asyncio")
    assert purity_violations(graph) == ["broker.relay.flow -> asyncio"]
    graph = _with(repo_graph(), "rsb_codec.wire", "agent_client.encoder")
    assert "rsb_codec.wire -> agent_client.encoder" in purity_violations(graph)
    graph = _with(repo_graph(), "rsb_protocol.messages", "logging")  # the exception is one module
    assert "rsb_protocol.messages -> logging" in purity_violations(graph)


def test_a_clock_read_in_a_pure_core_is_reported() -> None:
    source = "def utc_now():\n    return datetime.now(UTC)\n\nstart = date.today()\n"
    assert clock_reads(source) == ["line 2: .now()", "line 4: .today()"]
    assert clock_reads("def due(now):\n    return now + timedelta(hours=4)\n") == []
