"""One audit vocabulary: every action the source writes is an ``AuditAction``, every member is
written somewhere, ``AuditLog.record`` refuses anything else, and the docs list the same names.

The source is read, not run: each call that writes an audit event (``audit.record``,
``audit.append``, a room's ``audit`` sink, the state machine's ``Audit`` effect) is found in the
AST and its action argument resolved (a literal, an f-string over literals, a conditional, or an
``AuditAction`` member); one the test cannot resolve fails it, unless it forwards a parameter.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.audit.actions import AuditAction
from broker.audit.log import Actor, AuditLog
from broker.store.sqlite import SQLiteStore
from tests.conftest import REPO

BROKER = REPO / "broker"
MEMBERS = {action.value for action in AuditAction}


def _strings(node: ast.expr) -> set[str] | None:
    """Every string ``node`` can evaluate to, or None when it is not built from literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body), _strings(node.orelse)
        return None if body is None or orelse is None else body | orelse
    if isinstance(node, ast.JoinedStr):
        results = {""}
        for part in node.values:
            inner = part.value if isinstance(part, ast.FormattedValue) else part
            options = _strings(inner)
            if options is None:
                return None
            results = {done + option for done in results for option in options}
        return results
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "AuditAction"
    ):
        return {AuditAction[node.attr].value} if node.attr in AuditAction.__members__ else {"?"}
    return None


def _action_argument(call: ast.Call) -> ast.expr | None:
    """The action argument of a call that writes an audit event, else None."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name == "Audit" and call.args:  # the state machine's effect: Audit(action, details)
        return call.args[0]
    if not isinstance(func, ast.Attribute) or len(call.args) < 2:
        return None
    owner = func.value
    owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
    if func.attr in ("record", "append") and owner_name in ("audit", "_audit"):
        return call.args[1]  # AuditLog.record / append(actor, action, ...)
    if func.attr == "audit":
        return call.args[1]  # a room's sink: room.audit(actor, action, details)
    return None


def _written_actions() -> tuple[set[str], list[str]]:
    """Action names written anywhere in broker/, and the call sites the test cannot read."""
    written: set[str] = set()
    unreadable: list[str] = []
    for path in sorted(BROKER.rglob("*.py")):
        if path.name == "actions.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "AuditAction":  # also names held in a variable first
                    written |= _strings(node) or set()
            if not isinstance(node, ast.Call):
                continue
            argument = _action_argument(node)
            if argument is None:
                continue
            options = _strings(argument)
            if options is not None:
                written |= options
            elif not isinstance(argument, ast.Name):  # a Name forwards a caller's action
                unreadable.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return written, unreadable


def test_every_action_written_is_a_member_and_every_member_is_written() -> None:
    written, unreadable = _written_actions()
    assert unreadable == []
    assert sorted(written - MEMBERS) == [], "not in AuditAction"
    assert sorted(MEMBERS - written) == [], "in AuditAction but written nowhere"


def test_the_scan_reads_each_kind_of_call_site() -> None:
    """Each shape the broker uses is seen: were one missed, the test above would be blind."""
    source = (
        "await self._audit.record(actor, AuditAction.CASE_CREATED, at=now)\n"
        "await services.audit.append(actor, 'audit.searched', at=now)\n"
        "await room.audit(actor, 'relay.closed', details)\n"
        "fx.append(Audit(f\"session.agent_{'resumed' if resumed else 'connected'}\", {}))\n"
        "await self.audit(actor, action, details)\n"
        "queue.append(item)\n"
        "await self._audit.record(actor, make_name(), at=now)\n"
    )
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and (argument := _action_argument(node)) is not None:
            found.append(_strings(argument))
    assert found == [
        {"case.created"},
        {"audit.searched"},
        {"relay.closed"},
        {"session.agent_resumed", "session.agent_connected"},
        None,  # a forwarded Name: allowed
        None,  # a call: reported as unreadable by the scan
    ]


def _documented_actions() -> set[str]:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Where audit happens", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("| ---"):
            events = line.strip("|").split("|", 1)[1]  # the events column
            names |= set(re.findall(r"`([a-z]+\.[a-z_]+)`", events))
    return names


def test_the_architecture_docs_list_the_vocabulary() -> None:
    documented = _documented_actions()
    assert sorted(MEMBERS - documented) == [], "missing from docs/architecture.md"
    assert sorted(documented - MEMBERS) == [], "documented but not in AuditAction"


async def test_record_refuses_a_name_outside_the_vocabulary(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "rsb.db"))
    try:
        audit = AuditLog(store)
        now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        with pytest.raises(ValueError):
            await audit.append(Actor.system(), "case.creatd", at=now)
        assert await store.audit_head() is None
        event = await audit.append(Actor.system(), "case.created", at=now)
        assert event.action == "case.created" and type(event.action) is str
        assert event.action == AuditAction.CASE_CREATED
    finally:
        await store.close()
