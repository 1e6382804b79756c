"""The mutation table (tools/mutation.py) still applies to this tree: each snippet exactly once, each result compiles.

The mutation run itself is not in CI (docs/testing.md, "Mutation testing"); this keeps its
list valid as the code changes, so the one command keeps working.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("gdfr_mutation", REPO / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_every_mutant_applies_exactly_once_and_compiles(mutation):
    assert mutation.check_table(REPO) == []
    assert len(mutation.MUTANTS) >= 40


def test_a_stale_or_ambiguous_snippet_is_named(mutation, tmp_path):
    (tmp_path / "a.py").write_text("x = 1\ny = 1\n")
    stale = mutation.Mutant("gone", "a.py", "z = 1", "z = 2", "-", ("tests/x.py",))
    twice = mutation.Mutant("twice", "a.py", "= 1", "= 2", "-", ("@nope",))
    broken = mutation.Mutant("syntax", "a.py", "x = 1", "x = (", "-", ())
    problems = mutation.check_table(tmp_path, (stale, twice, broken))
    assert "gone: snippet found 0 times in a.py (must be exactly once): 'z = 1'" in problems
    assert "twice: snippet found 2 times in a.py (must be exactly once): '= 1'" in problems
    assert "twice: unknown test group '@nope'" in problems
    assert any(p.startswith("syntax: mutated a.py does not compile") for p in problems)


def test_selection_expands_groups_once(mutation):
    mutant = mutation.Mutant("m", "a.py", "a", "b", "-", ("@train", "tests/test_schedule.py"))
    args = mutation.selection(mutant)
    assert args == list(mutation.GROUPS["train"])
    assert len(args) == len(set(args))
