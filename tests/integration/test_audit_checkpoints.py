"""Signed checkpoints and head anchors: the tail of the audit log cannot be cut off unseen.

Each attack is the one the outside tour used: drop the triggers, delete the newest events and
UPDATE ``audit_head`` to match, which the head record alone took for an intact chain.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from broker.app import sweep
from broker.audit.actions import AuditAction
from broker.audit.chain import StoredRow, event_hash, verify_chain
from broker.audit.checkpoint import Anchor, checkpoint_problem, sign_checkpoint
from broker.audit.log import CHECKPOINT_EVERY_EVENTS, Actor
from broker.auth.keys import SigningKey
from broker.types import Role
from tests.conftest import Broker, rsb
from tests.integration.test_api_input import CASE
from tests.integration.test_audit import _activity


async def _more_activity(broker: Broker) -> None:
    rita = await broker.login("rita")
    await broker.call("POST", "/api/v1/cases", status=201, headers=rita, json=CASE)


def _sql(db: Path, *statements: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    """Run statements the way an attacker with the file would: triggers dropped first."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        for trigger in (
            "audit_no_update",
            "audit_no_delete",
            "audit_checkpoints_no_update",
            "audit_checkpoints_no_delete",
        ):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        rows: list[sqlite3.Row] = []
        for statement in statements:
            rows = list(conn.execute(statement, params if "?" in statement else ()))
        return rows


def _cut_tail(db: Path, keep: int) -> None:
    """Delete every event after ``keep`` and rewrite the head to match: the tour's attack."""
    kept = _sql(db, f"SELECT hash FROM audit_events WHERE seq = {keep}")[0]["hash"]
    _sql(
        db,
        f"DELETE FROM audit_events WHERE seq > {keep}",
        "UPDATE audit_head SET seq = ?, hash = ?",
        params=(keep, kept),
    )


def _rows(db: Path) -> list[StoredRow]:
    return [
        StoredRow(*row)
        for row in _sql(
            db,
            "SELECT seq, at, actor, actor_role, client_addr, action, case_number, session_id, "
            "details, prev_hash, hash FROM audit_events ORDER BY seq",
        )
    ]


def _head(db: Path) -> tuple[int, str]:
    row = _sql(db, "SELECT seq, hash FROM audit_head")[0]
    return int(row["seq"]), str(row["hash"])


def _verify(db: Path, *extra: str) -> tuple[int, str]:
    done = rsb("audit", "verify", "--db", str(db), *extra)
    return done.returncode, done.stdout + done.stderr


async def test_cut_tail_with_a_rewritten_head_fails_verify(broker: Broker, db_path: Path) -> None:
    await _activity(broker)
    await sweep(broker.client.app)  # the sweeper signs the head
    signed = _head(db_path)
    assert _verify(db_path)[0] == 0
    _cut_tail(db_path, keep=signed[0] - 2)
    # The hole as it was: chain and head record agree, so the head alone says "intact".
    assert verify_chain(_rows(db_path), _head(db_path)).ok
    code, out = _verify(db_path)
    assert code == 1
    assert "TRUNCATED" in out and f"ends at seq {signed[0] - 2}" in out
    assert f"covers seq {signed[0]}" in out
    result = (await broker.services.audit.verify()).result
    assert not result.ok and result.first_bad_seq == signed[0] - 1
    # New events after the cut do not hide it: seq N now holds another event.
    sec = await broker.staff("sam", Role.SECURITY)
    http = await broker.call("GET", "/api/v1/audit/verify", status=200, headers=sec)
    assert http["ok"] is False and http["first_bad_seq"] == signed[0]
    assert "does not match the newest signed checkpoint" in http["reason"]


async def test_sweeper_and_head_export_refuse_to_sign_a_cut_tail(
    broker: Broker, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await _activity(broker)
    await sweep(broker.client.app)
    signed = _head(db_path)
    _cut_tail(db_path, keep=signed[0] - 1)
    with caplog.at_level(logging.ERROR, logger="broker.audit.log"):
        await sweep(broker.client.app)
    assert "may have been cut short" in caplog.text
    latest = await broker.services.store.latest_audit_checkpoint()
    assert latest is not None and (latest.seq, latest.hash) == signed
    done = rsb("audit", "head", "--db", str(db_path))
    assert done.returncode == 2 and "cut short" in done.stderr and done.stdout == ""


async def test_rewrite_with_recomputed_hashes_fails_against_the_checkpoint(
    broker: Broker, db_path: Path
) -> None:
    """Edit one event and recompute every later hash and the head: no secret needed for that."""
    await _activity(broker)
    await sweep(broker.client.app)
    rows = _rows(db_path)
    prev, forged = rows[1].prev_hash, []
    for row in rows[1:]:
        details = '{"forged":true}' if row.seq == 2 else row.details_json
        digest = event_hash(
            row.seq,
            row.at,
            row.actor,
            row.actor_role,
            row.client_addr,
            row.action,
            row.case_number,
            row.session_id,
            details,
            prev,
        )
        forged.append((details, prev, digest, row.seq))
        prev = digest
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
        conn.executemany(
            "UPDATE audit_events SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?", forged
        )
        conn.execute("UPDATE audit_head SET hash = ?", (prev,))
    assert verify_chain(_rows(db_path), _head(db_path)).ok  # consistent with itself
    code, out = _verify(db_path)
    assert code == 1 and "does not match the newest signed checkpoint" in out


async def test_edited_or_forged_checkpoint_fails(broker: Broker, db_path: Path) -> None:
    await _activity(broker)
    await sweep(broker.client.app)
    seq = _head(db_path)[0]
    _cut_tail(db_path, keep=seq - 1)
    # Move the checkpoint back to the shortened head: its signature no longer covers it.
    _sql(
        db_path,
        "UPDATE audit_checkpoints SET seq = ?, hash = (SELECT hash FROM audit_head)",
        params=(seq - 1,),
    )
    code, out = _verify(db_path)
    assert code == 1 and "signature does not verify" in out
    # A checkpoint signed by a key of the attacker's own is refused too.
    own = SigningKey.generate(broker.clock())
    fake = sign_checkpoint(own, seq - 1, _head(db_path)[1], broker.clock())
    _sql(
        db_path,
        "DELETE FROM audit_checkpoints",
        "INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?, ?)",
        params=(fake.seq, fake.hash, fake.at, fake.kid, fake.signature),
    )
    code, out = _verify(db_path)
    assert code == 1 and "does not hold" in out


async def test_anchor_catches_a_cut_that_also_removed_the_checkpoints(
    broker: Broker, db_path: Path, tmp_path: Path
) -> None:
    await _activity(broker)
    anchor = tmp_path / "head.json"
    done = rsb("audit", "head", "-o", str(anchor), "--db", str(db_path))
    assert done.returncode == 0, done.stderr
    anchored = json.loads(anchor.read_text())
    assert anchored["seq"] == _head(db_path)[0]  # its own audit.head_exported event included
    await _more_activity(broker)  # the log goes on after the anchor
    assert _verify(db_path, "--anchor", str(anchor))[0] == 0
    # An attacker who knows about checkpoints deletes them as well.
    _cut_tail(db_path, keep=anchored["seq"] - 1)
    _sql(db_path, "DELETE FROM audit_checkpoints")
    code, out = _verify(db_path)
    assert code == 0  # the database alone cannot tell (docs/security.md says so)
    code, out = _verify(db_path, "--anchor", str(anchor))
    assert code == 1 and "TRUNCATED" in out and "the anchor" in out


async def test_tampered_foreign_or_malformed_anchor_fails(
    broker: Broker, db_path: Path, tmp_path: Path
) -> None:
    await _activity(broker)
    sec = await broker.staff("sam", Role.SECURITY)
    body = await broker.call("GET", "/api/v1/audit/head", status=200, headers=sec)
    anchor = tmp_path / "head.json"
    anchor.write_text(json.dumps(body))
    assert _verify(db_path, "--anchor", str(anchor))[0] == 0
    events = (await broker.call("GET", "/api/v1/audit?actor=sam", status=200, headers=sec))[
        "events"
    ]
    assert body["seq"] in {e["seq"] for e in events if e["action"] == "audit.head_exported"}
    # Shift the anchor to an earlier head, as one would to excuse a cut: the signature breaks.
    earlier = _sql(db_path, "SELECT hash FROM audit_events WHERE seq = 2")[0]["hash"]
    anchor.write_text(json.dumps({**body, "seq": 2, "hash": earlier}))
    code, out = _verify(db_path, "--anchor", str(anchor))
    assert code == 1 and "signature does not verify" in out
    flipped = body["signature"][:-2] + ("AA" if body["signature"][-2:] != "AA" else "BA")
    anchor.write_text(json.dumps({**body, "signature": flipped}))
    code, out = _verify(db_path, "--anchor", str(anchor))
    assert code == 1 and "signature does not verify" in out
    # Well signed, but by a key that is not this broker's: refused whatever key it carries.
    own = SigningKey.generate(broker.clock())
    forged = Anchor(
        sign_checkpoint(own, body["seq"], body["hash"], broker.clock()), body["public_key"]
    )
    anchor.write_text(forged.to_text())
    code, out = _verify(db_path, "--anchor", str(anchor))
    assert code == 1 and "does not hold" in out
    for text in ("not json", json.dumps({**body, "format": "other"}), json.dumps([1])):
        anchor.write_text(text)
        code, out = _verify(db_path, "--anchor", str(anchor))
        assert code == 2 and "anchor" in out
    code, out = _verify(db_path, "--anchor", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read anchor" in out


async def test_rotated_audit_key_keeps_old_checkpoints_verifiable(
    broker: Broker, db_path: Path, tmp_path: Path
) -> None:
    await _activity(broker)
    await sweep(broker.client.app)
    before = await broker.services.store.latest_audit_checkpoint()
    assert before is not None
    anchor = tmp_path / "before.json"
    assert rsb("audit", "head", "-o", str(anchor), "--db", str(db_path)).returncode == 0
    done = rsb("keys", "rotate", "--db", str(db_path))
    assert done.returncode == 0 and "new audit key" in done.stdout
    keys = await broker.services.store.list_audit_keys()
    old = next(k for k in keys if k.kid == before.kid)
    assert old.retired_at is not None and old.private_pem is None  # only verifies now
    new = [k for k in keys if k.retired_at is None]
    assert len(new) == 1 and new[0].kid != before.kid and new[0].private_pem
    public = {k.kid: k.public_key for k in keys}
    assert checkpoint_problem(before, public) is None
    latest = await broker.services.store.latest_audit_checkpoint()
    assert latest is not None and latest.kid == new[0].kid  # the rotation event is signed anew
    assert _verify(db_path)[0] == 0
    assert _verify(db_path, "--anchor", str(anchor))[0] == 0  # signed by the retired key
    await _more_activity(broker)
    await sweep(broker.client.app)
    assert _verify(db_path, "--anchor", str(anchor))[0] == 0


async def test_checkpoints_on_sweep_export_and_every_n_events(
    broker: Broker, db_path: Path
) -> None:
    store, audit = broker.services.store, broker.services.audit
    await sweep(broker.client.app)
    first = await store.latest_audit_checkpoint()
    assert first is not None and first.seq == _head(db_path)[0]
    await sweep(broker.client.app)  # nothing new: no second checkpoint of the same head
    assert len(_sql(db_path, "SELECT seq FROM audit_checkpoints")) == 1
    sec = await broker.staff("sam", Role.SECURITY)
    resp = await broker.client.get("/api/v1/audit/export", headers=sec)
    assert resp.status == 200
    exported = [json.loads(line) for line in (await resp.text()).splitlines()]
    latest = await store.latest_audit_checkpoint()
    assert latest is not None and latest.seq == exported[-1]["seq"]
    assert exported[-1]["action"] == "audit.exported"
    # A burst between two sweeps is signed inside its own transaction every N events.
    start = _head(db_path)[0]
    async with store.transaction():
        for _ in range(CHECKPOINT_EVERY_EVENTS - start % CHECKPOINT_EVERY_EVENTS):
            await audit.record(Actor.system(), AuditAction.AUDIT_SEARCHED, at=broker.clock())
    latest = await store.latest_audit_checkpoint()
    assert latest is not None and latest.seq % CHECKPOINT_EVERY_EVENTS == 0
    assert latest.seq == _head(db_path)[0]
    http = await broker.call("GET", "/api/v1/audit/verify", status=200, headers=sec)
    assert http["ok"] is True and http["checkpoint_seq"] == latest.seq
