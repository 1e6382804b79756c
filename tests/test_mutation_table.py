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


def test_selection_expands_groups_once_and_drops_missing_optional_files(mutation, tmp_path, monkeypatch):
    monkeypatch.setitem(mutation.GROUPS, "g", ("tests/a.py", "?tests/b.py::test_x", "tests/a.py::test_y"))
    mutant = mutation.Mutant("m", "a.py", "a", "b", "-", ("@g", "tests/a.py"))
    assert mutation.selection(mutant) == ["tests/a.py", "tests/b.py::test_x", "tests/a.py::test_y"]
    assert mutation.selection(mutant, root=tmp_path) == ["tests/a.py", "tests/a.py::test_y"]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "b.py").write_text("")
    assert mutation.selection(mutant, ("-k", "x"), root=tmp_path) == [
        "tests/a.py", "tests/b.py::test_x", "tests/a.py::test_y", "-k", "x"]
