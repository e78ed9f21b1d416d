"""Read-back string: order never matters, every key and the session id always do."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsb_protocol.e2e import KeyAlgorithm, KeyPair, PublicKey
from rsb_protocol.readback import WORDS, ReadbackString, readback

SID = "k3J9xQm2TzVw8LpR4nYb6A"


def fixed_key(n: int, alg: KeyAlgorithm = KeyAlgorithm.X25519) -> PublicKey:
    return KeyPair.from_private_bytes(alg, bytes([n]) * 32).public


KEYS = [fixed_key(1), fixed_key(2), fixed_key(3), fixed_key(4, KeyAlgorithm.P256)]


def test_word_list_has_256_distinct_short_lowercase_words() -> None:
    assert len(WORDS) == 256
    assert len(set(WORDS)) == 256
    assert all(word.isalpha() and word.islower() and 3 <= len(word) <= 8 for word in WORDS)


def reference(session_id: bytes, keys: list[PublicKey]) -> tuple[str, tuple[str, ...]]:
    """The documented derivation, written out with the standard library's HMAC (RFC 5869)."""
    entries = sorted(bytes([len(k.algorithm)]) + k.algorithm.encode() + k.raw for k in keys)
    prk = hmac.new(session_id, b"".join(entries), hashlib.sha256).digest()
    okm = hmac.new(prk, b"rsb v1 readback\x01", hashlib.sha256).digest()[:12]
    return f"{int.from_bytes(okm[:8], 'big') % 10**6:06d}", tuple(WORDS[b] for b in okm[8:])


def test_known_answer() -> None:
    """Pinned so the browser implementation can check itself against these bytes."""
    result = readback(SID, KEYS)
    assert (result.digits, result.words) == reference(SID.encode(), KEYS)
    assert result == readback(SID.encode(), KEYS)
    assert len(result.digits) == 6 and result.digits.isdigit()
    assert all(word in WORDS for word in result.words)
    assert str(result) == f"{result.digits[:3]} {result.digits[3:]} / {' '.join(result.words)}"
    assert result == ReadbackString("538757", ("basket", "radio", "volcano", "flute"))


@settings(deadline=None, max_examples=25)
@given(st.permutations(KEYS))
def test_any_order_gives_the_same_string(keys: list[PublicKey]) -> None:
    assert readback(SID, keys) == readback(SID, KEYS)


@pytest.mark.parametrize("position", range(len(KEYS)))
def test_changing_any_one_key_changes_both_forms(position: int) -> None:
    changed = list(KEYS)
    changed[position] = fixed_key(100 + position, KEYS[position].algorithm)
    before, after = readback(SID, KEYS), readback(SID, changed)
    assert before.digits != after.digits
    assert before.words != after.words


def test_adding_or_dropping_a_key_changes_it() -> None:
    assert readback(SID, KEYS[:3]) != readback(SID, KEYS)
    assert readback(SID, KEYS + [fixed_key(9)]) != readback(SID, KEYS)


def test_session_id_changes_it() -> None:
    assert readback(SID, KEYS) != readback(SID + "x", KEYS)


def test_same_bytes_under_another_algorithm_label_would_differ() -> None:
    # The algorithm name is part of each entry, so keys cannot be reinterpreted silently.
    assert readback(SID, [fixed_key(1)]) != readback(SID, [fixed_key(1, KeyAlgorithm.P256)])


@pytest.mark.parametrize(("session_id", "keys"), [("", KEYS), (b"", KEYS), (SID, [])])
def test_needs_a_session_id_and_a_key(session_id: str | bytes, keys: list[PublicKey]) -> None:
    with pytest.raises(ValueError):
        readback(session_id, keys)
