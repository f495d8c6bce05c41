"""Every mutation of ``tests.mutations`` still names code that exists: a
reformatting or a rewrite that moves the code it changes fails here, in the
suite, rather than only when the mutations are run."""

from __future__ import annotations

import pathlib

import pytest

from tests.mutations import MUTATIONS, ROOT


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_still_applies(mutation):
    text = pathlib.Path(ROOT, mutation.path).read_text()
    assert text.count(mutation.old) == 1, f"{mutation.name}: update its old text in {mutation.path}"
