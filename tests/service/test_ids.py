"""Prefixed ULIDs: the quick well-formedness check agrees with python-ulid's parser."""

from __future__ import annotations

import random

from ulid import ULID

from service import ids


def parses(text: str) -> bool:
    try:
        ULID.from_str(text)
    except ValueError:
        return False
    return True


def test_is_valid_accepts_exactly_what_ulid_parses():
    # Mostly well-formed ULIDs with one character changed, in either case, so
    # that both answers come up often; also the wrong lengths.
    generator = random.Random(7)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*_ "
    accepted = 0
    for _ in range(5000):
        text = list(str(ULID()))
        text[generator.randrange(26)] = generator.choice(alphabet)
        text = "".join(text)
        if generator.random() < 0.3:
            text = text.lower()
        if generator.random() < 0.05:
            text = text[: generator.randrange(26)]
        assert ids.is_valid(f"pst_{text}", ids.POST) == parses(text), text
        accepted += parses(text)
    assert 1000 < accepted < 4500  # both answers were exercised


def test_is_valid_wants_the_prefix():
    tail = str(ULID())
    assert ids.is_valid(f"pst_{tail}", ids.POST)
    assert not ids.is_valid(f"acc_{tail}", ids.POST)
    assert not ids.is_valid(tail, ids.POST)
    assert not ids.is_valid(ids.new(ids.POST) + "0", ids.POST)


def test_letters_that_only_fold_to_ascii_are_refused():
    # Unicode case folding makes the Kelvin sign a K and the long s an S.
    for odd in ("\u212a", "\u017f"):
        text = str(ULID())[:-1] + odd
        assert not parses(text)
        assert not ids.is_valid(f"pst_{text}", ids.POST)
