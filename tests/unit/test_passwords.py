"""Argon2id password hashing: round trips, refusals, rehash detection and the dummy path."""

from __future__ import annotations

import argon2
import pytest
from argon2.profiles import RFC_9106_LOW_MEMORY
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.auth import passwords
from broker.auth.passwords import (
    DEFAULT_PARAMS,
    MAX_PASSWORD_BYTES,
    HashParams,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from broker.errors import ValidationFailed

CHEAP = HashParams(time_cost=1, memory_cost=8, parallelism=1)
OTHER = HashParams(time_cost=2, memory_cost=8, parallelism=1)


def test_defaults_follow_rfc_9106_low_memory_profile() -> None:
    assert DEFAULT_PARAMS.time_cost == RFC_9106_LOW_MEMORY.time_cost
    assert DEFAULT_PARAMS.memory_cost == RFC_9106_LOW_MEMORY.memory_cost
    assert DEFAULT_PARAMS.parallelism == RFC_9106_LOW_MEMORY.parallelism


def test_round_trip_uses_argon2id_and_fresh_salts() -> None:
    first = hash_password("correct horse", CHEAP)
    second = hash_password("correct horse", CHEAP)
    assert first.startswith("$argon2id$")
    assert first != second
    assert verify_password(first, "correct horse", CHEAP)
    assert verify_password(second, "correct horse")


def test_wrong_password_is_false() -> None:
    stored = hash_password("correct horse", CHEAP)
    assert not verify_password(stored, "correct horsE", CHEAP)


@pytest.mark.parametrize(
    "garbage",
    ["", "nope", "$argon2id$v=19$m=8,t=1,p=1$$", "$2b$12$abcdefghijklmnopqrstuv", "$argon2id$"],
)
def test_garbage_hash_is_false_not_an_error(garbage: str) -> None:
    assert verify_password(garbage, "pw", CHEAP) is False


@pytest.mark.parametrize("bad", ["", "x" * (MAX_PASSWORD_BYTES + 1), "é" * 513, "a\ud800b"])
def test_refused_passwords(bad: str) -> None:
    with pytest.raises(ValidationFailed):
        hash_password(bad, CHEAP)
    with pytest.raises(ValidationFailed):
        verify_password(hash_password("pw", CHEAP), bad, CHEAP)
    with pytest.raises(ValidationFailed):
        verify_password(None, bad, CHEAP)


def test_longest_password_is_accepted() -> None:
    longest = "é" * (MAX_PASSWORD_BYTES // 2)
    assert verify_password(hash_password(longest, CHEAP), longest, CHEAP)


def test_needs_rehash() -> None:
    stored = hash_password("pw", CHEAP)
    assert not needs_rehash(stored, CHEAP)
    assert needs_rehash(stored, OTHER)
    assert needs_rehash("not a hash", CHEAP)


def test_unknown_user_runs_a_real_verification_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_verify = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        seen.append(str(hash))
        return real_verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)
    assert verify_password(None, "anything", CHEAP) is False
    assert seen == [dummy_hash(CHEAP)]


def test_dummy_hash_costs_what_real_hashes_cost() -> None:
    dummy = dummy_hash(CHEAP)
    assert dummy is dummy_hash(CHEAP)
    assert argon2.extract_parameters(dummy) == argon2.extract_parameters(hash_password("pw", CHEAP))
    assert not needs_rehash(dummy, CHEAP)


def test_hasher_is_argon2id_with_given_params() -> None:
    hasher = passwords._hasher(CHEAP)
    assert hasher.type is argon2.Type.ID
    assert hasher.time_cost == CHEAP.time_cost


@settings(max_examples=60, deadline=None)
@given(stored=st.one_of(st.none(), st.text(max_size=120)), pw=st.text(max_size=40))
def test_verify_never_raises_beyond_its_docstring(stored: str | None, pw: str) -> None:
    try:
        result = verify_password(stored, pw, CHEAP)
    except ValidationFailed:
        return
    assert result is False


@settings(max_examples=60, deadline=None)
@given(stored=st.text(max_size=120))
def test_needs_rehash_never_raises(stored: str) -> None:
    assert needs_rehash(stored, CHEAP) in (True, False)
