"""The hash chain and its signed checkpoints, without a database: every break they must report."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from broker.audit.chain import (
    GENESIS_HASH,
    AuditRecord,
    Pin,
    StoredRow,
    canonical,
    chain_next,
    verify_chain,
)
from broker.audit.checkpoint import (
    Anchor,
    AnchorError,
    anchor_problem,
    checkpoint_problem,
    public_key_text,
    sign_checkpoint,
    signing_input,
)
from broker.auth.keys import SigningKey

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _rows(n: int) -> list[StoredRow]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = chain_next(
            AuditRecord(
                at=datetime(2026, 1, 1, tzinfo=UTC),
                actor=f"u{seq}",
                actor_role="rse",
                action="x.y",
                details={"n": seq, "ü": "é"},
            ),
            seq,
            prev,
        )
        rows.append(
            StoredRow(
                event.seq,
                event.at,
                event.actor,
                event.actor_role,
                event.client_addr,
                event.action,
                event.case_number,
                event.session_id,
                canonical(event.details),
                event.prev_hash,
                event.hash,
            )
        )
        prev = event.hash
    return rows


def test_intact_chain_and_head() -> None:
    rows = _rows(5)
    result = verify_chain(rows, (5, rows[-1].hash))
    assert result.ok and result.checked == 5 and result.head_hash == rows[-1].hash
    assert verify_chain([], None).ok


def test_each_break_names_the_first_bad_event() -> None:
    rows = _rows(5)
    edited = [*rows[:2], dataclasses.replace(rows[2], actor="mallory"), *rows[3:]]
    assert verify_chain(edited).first_bad_seq == 3
    assert verify_chain([*rows[:2], *rows[3:]]).first_bad_seq == 4
    swapped = [*rows[:1], rows[2], rows[1], *rows[3:]]
    assert verify_chain(swapped).first_bad_seq == 3
    renumbered = [
        *rows[:1],
        dataclasses.replace(rows[2], seq=2),
        dataclasses.replace(rows[1], seq=3),
        *rows[3:],
    ]
    assert verify_chain(renumbered).first_bad_seq == 2
    truncated = verify_chain(rows[:4], (5, rows[-1].hash))
    assert not truncated.ok and "head" in (truncated.reason or "")
    relinked = dataclasses.replace(rows[1], prev_hash="f" * 64)
    assert verify_chain([rows[0], relinked, *rows[2:]]).first_bad_seq == 2


def test_pins_catch_a_cut_tail_that_the_rewritten_head_hides() -> None:
    rows = _rows(5)
    cut, rewritten_head = rows[:3], (3, rows[2].hash)
    assert verify_chain(cut, rewritten_head).ok  # the hole: head and chain agree
    signed = Pin(5, rows[4].hash, "the newest signed checkpoint")
    result = verify_chain(cut, rewritten_head, [signed])
    assert not result.ok and result.first_bad_seq == 4
    assert "TRUNCATED" in (result.reason or "") and "covers seq 5" in (result.reason or "")
    assert verify_chain(rows, (5, rows[4].hash), [signed, Pin(2, rows[1].hash, "x")]).ok
    # Cut, then appended to again: the pinned seq now holds another event.
    other = _rows(6)[5]
    regrown = [*rows[:4], dataclasses.replace(rows[4], hash=other.hash)]
    moved = verify_chain(regrown, None, [signed])
    assert not moved.ok and moved.first_bad_seq == 5


def _key() -> SigningKey:
    return SigningKey.generate(NOW)


def test_checkpoint_signature_covers_every_field() -> None:
    key, head = _key(), "ab" * 32
    checkpoint = sign_checkpoint(key, 5, head, NOW)
    keys = {key.kid: public_key_text(key)}
    assert checkpoint_problem(checkpoint, keys) is None
    for change in (
        {"seq": 4},
        {"hash": "cd" * 32},
        {"at": (NOW + timedelta(seconds=1)).isoformat(timespec="microseconds")},
        {"signature": checkpoint.signature[:-4] + "AAAA"},
        {"signature": "not base64url!"},
    ):
        forged = dataclasses.replace(checkpoint, **change)
        assert checkpoint_problem(forged, keys) == "its signature does not verify", change
    other = _key()
    assert "does not hold" in (checkpoint_problem(sign_checkpoint(other, 5, head, NOW), keys) or "")
    # A kid swapped for another held key's: the signature covers the kid too.
    both = {**keys, other.kid: public_key_text(other)}
    swapped = dataclasses.replace(checkpoint, kid=other.kid)
    assert checkpoint_problem(swapped, both) == "its signature does not verify"


def test_signing_input_is_domain_separated() -> None:
    key = _key()
    checkpoint = sign_checkpoint(key, 1, "ab" * 32, NOW)
    body = canonical({"at": checkpoint.at, "hash": checkpoint.hash, "kid": key.kid, "seq": 1})
    assert signing_input(1, checkpoint.hash, checkpoint.at, key.kid) != body.encode()
    assert signing_input(1, checkpoint.hash, checkpoint.at, key.kid).endswith(body.encode())
    assert not signing_input(1, checkpoint.hash, checkpoint.at, key.kid).startswith(b"ey")


def test_sign_checkpoint_refuses_what_it_cannot_mean() -> None:
    key = _key()
    for seq, digest, at in (
        (0, "ab" * 32, NOW),
        (1, "AB" * 32, NOW),
        (1, "ab" * 31, NOW),
        (1, "ab" * 32, NOW.replace(tzinfo=None)),
    ):
        with pytest.raises(ValueError):
            sign_checkpoint(key, seq, digest, at)


def test_old_key_still_verifies_what_it_signed() -> None:
    old, new = _key(), _key()
    before = sign_checkpoint(old, 3, "ab" * 32, NOW)
    after = sign_checkpoint(new, 9, "cd" * 32, NOW + timedelta(days=30))
    ring = {old.kid: public_key_text(old), new.kid: public_key_text(new)}
    assert checkpoint_problem(before, ring) is None and checkpoint_problem(after, ring) is None


def test_anchor_round_trip_and_refusals() -> None:
    key = _key()
    anchor = Anchor(sign_checkpoint(key, 7, "ab" * 32, NOW), public_key_text(key))
    assert Anchor.from_text(anchor.to_text()) == anchor
    held = {key.kid: public_key_text(key)}
    assert anchor_problem(anchor, held) is None
    # The file's own key is not trusted: it must be the one the database holds for the kid.
    impostor = _key()
    carried = Anchor(anchor.checkpoint, public_key_text(impostor))
    assert "not the database's audit key" in (anchor_problem(carried, held) or "")
    good = anchor.to_json()
    for text in (
        "not json",
        "[1]",
        "[" * 10_000,
        json.dumps({**good, "format": "rsb-audit-anchor/2"}),
        json.dumps({**good, "seq": 0}),
        json.dumps({**good, "seq": True}),
        json.dumps({**good, "seq": "7"}),
        json.dumps({**good, "hash": "zz"}),
        json.dumps({**good, "kid": ""}),
        json.dumps({**good, "extra": 1}),
        json.dumps({k: v for k, v in good.items() if k != "signature"}),
        " " * 5000,
    ):
        with pytest.raises(AnchorError):
            Anchor.from_text(text)
