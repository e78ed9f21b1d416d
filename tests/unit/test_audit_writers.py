"""Audit events are appended by the service layer only: the edges (CLI, app wiring, HTTP
handlers, pages) call services, never the store's transaction or the chain's append.

This is what made the CLI's export unaudited once: a command that reads or writes through the
store directly bypasses what ``AuditLog`` records. Read from the source (the AST), so a call
inside a function counts as much as one at module level. The behaviour itself, the CLI's export
recorded like the HTTP one, is ``tests/integration/test_audit.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

BROKER = REPO / "broker"

SERVICE_LAYER = {
    "broker/audit/log.py",  # AuditLog: the only caller of Store.append_audit
    "broker/auth/service.py",
    "broker/sessions/case_service.py",
    "broker/sessions/session_service.py",
    "broker/services.py",  # wiring: the code pepper, stored once at first start
    "broker/storage.py",
}


def _edge(relative: str) -> bool:
    parts = Path(relative).parts
    return (
        relative in ("broker/cli.py", "broker/app.py", "broker/web.py")
        or parts[:2] == ("broker", "api")
        or parts[-1] == "handlers.py"
    )


def _calls(path: Path, names: set[str]) -> list[int]:
    """Lines calling ``x.name(...)`` or ``name(...)`` (``broker.storage.transaction(store)``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr in names)
            or (isinstance(node.func, ast.Name) and node.func.id in names)
        )
    ]


def _modules() -> list[tuple[str, Path]]:
    return [
        (path.relative_to(REPO).as_posix(), path)
        for path in sorted(BROKER.rglob("*.py"))
        if "store" not in path.relative_to(BROKER).parts[:1]  # the store itself
    ]


def test_only_the_audit_log_appends_to_the_chain() -> None:
    callers = {rel for rel, path in _modules() if _calls(path, {"append_audit"})}
    assert callers == {"broker/audit/log.py"}


def test_only_the_service_layer_opens_store_transactions() -> None:
    openers = {rel for rel, path in _modules() if _calls(path, {"transaction"})}
    assert openers <= SERVICE_LAYER, sorted(openers - SERVICE_LAYER)
    assert "broker/audit/log.py" in openers  # the scan sees the calls it is about


def test_edges_never_record_audit_events_themselves() -> None:
    """The CLI, the app and the handlers go through a service (``AuditLog.append`` for an event
    of its own, ``begin_export`` for an export), never ``AuditLog.record``, whose caller must
    hold the transaction of the change it records."""
    offenders = {
        f"{rel}:{line}"
        for rel, path in _modules()
        if _edge(rel)
        for line in _calls(path, {"record", "transaction", "append_audit"})
    }
    assert offenders == set()
    assert _edge("broker/cli.py") and _edge("broker/api/audit_routes.py")
    assert not _edge("broker/audit/log.py")
