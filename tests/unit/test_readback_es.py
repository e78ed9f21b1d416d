"""The Spanish read-back words: as many as the English ones, distinct to the ear, same indices."""

from __future__ import annotations

import itertools
import re

from rsb_protocol.e2e import KeyPair
from rsb_protocol.readback import WORD_LISTS, WORDS, WORDS_ES, readback


def _sound(word: str) -> str:
    """How a word sounds where s/z/c, b/v and ll/y sound alike and h is silent."""
    word = word.replace("ll", "y").replace("v", "b").replace("z", "s")
    word = re.sub(r"c([ei])", r"s\1", word)
    word = re.sub(r"qu([ei])", r"k\1", word).replace("c", "k")
    word = re.sub(r"gu([ei])", r"g\1", word)
    word = re.sub(r"g([ei])", r"j\1", word)
    return word.replace("h", "")


def _one_apart(a: str, b: str) -> bool:
    """One letter changed, added or removed."""
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return len(long) - len(short) == 1 and any(
        long[:i] + long[i + 1 :] == short for i in range(len(long))
    )


def test_one_word_per_byte_plain_letters_and_none_shared_with_english() -> None:
    assert len(WORDS_ES) == len(WORDS) == 256
    assert len(set(WORDS_ES)) == 256
    assert all(re.fullmatch(r"[a-z]{2,8}", word) for word in WORDS_ES)
    assert not set(WORDS_ES) & set(WORDS)
    assert WORD_LISTS == {"en": WORDS, "es": WORDS_ES}


def test_no_two_words_sound_alike_or_one_letter_apart() -> None:
    sounds = [_sound(word) for word in WORDS_ES]
    assert len(set(sounds)) == 256
    close = [
        (a, b)
        for (a, sa), (b, sb) in itertools.combinations(zip(WORDS_ES, sounds, strict=True), 2)
        if _one_apart(sa, sb)
    ]
    assert close == []


def test_the_spanish_words_stand_for_the_same_bytes_and_the_digits_do_not_change() -> None:
    keys = [KeyPair.generate().public, KeyPair.generate().public]
    value = readback("session-1", keys)
    spanish = value.words_in("es")
    assert [WORDS_ES.index(w) for w in spanish] == [WORDS.index(w) for w in value.words]
    assert value.words_in("en") == value.words
    assert readback("session-1", reversed(keys)).words_in("es") == spanish
