"""`--resume` of a finished run (issue 22, item 4): a complete run is left alone; `--epochs N` extends it."""

from __future__ import annotations

import json
import pathlib

import pytest

from keras_gdfr.training.extend import ExtendError, extended, extension_milestones
from keras_gdfr.training.recipe import load_recipe
from tests.test_integrity_cli import base_run, copy_run  # noqa: F401 (a fixture: one completed 2-epoch run)
from tests.test_training import events, gdfr


def files_of(run_dir: pathlib.Path) -> dict:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_extension_milestones_follow_the_recipes_rule():
    # The paper's milestones for 3 epochs ([1, 2]) become the paper's for 10, not [1, 2] stretched.
    assert extension_milestones(3, (1, 2), 10) == (3, 6, 8)
    assert extension_milestones(1, (), 200) == (60, 120, 160)
    assert extension_milestones(2, (1,), 4) == (1, 2, 3)
    # Other milestones scale from the run's length (round half up, clamped into [1, N - 1]).
    assert extension_milestones(10, (5,), 30) == (15,)
    assert extension_milestones(4, (2, 3), 5) == (3, 4)


def test_extended_recipe_and_its_refusal():
    recipe = load_recipe("recipes/cifar10.toml", epochs=3)
    longer = extended(recipe, 10, trained=3)
    assert (longer.train.epochs, longer.train.milestones) == (10, (3, 6, 8))
    assert longer.train.lr == recipe.train.lr and longer.data == recipe.data
    assert extended(recipe, 3, trained=3) is recipe  # the run's own length: a plain resume
    stopped = load_recipe("recipes/cifar10.toml", epochs=10)  # interrupted after 6 of 10 epochs
    with pytest.raises(ExtendError) as error:
        extended(stopped, 6, trained=6)
    assert str(error.value) == "--epochs 6: the run has trained 6 epoch(s); give more than 6 to extend it"
    assert extended(stopped, 7, trained=6).train.milestones == (2, 4, 6)  # a shorter length, past what it trained


def test_resume_of_a_completed_run_changes_nothing_and_epochs_extends_it(base_run, tmp_path):  # noqa: F811
    run_dir = copy_run(base_run, tmp_path)
    before = files_of(run_dir)
    test = events(run_dir)[-1]["test"]["accuracy"]
    for extra in ([], ["--epochs", 2]):
        again = gdfr("train", "--resume", run_dir, *extra)
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.stdout.strip() == (
            f"{run_dir}: already completed (2 epochs, test accuracy {test:.4f}); nothing to do. "
            f"To train it further: gdfr train --resume {run_dir} --epochs N (N > 2)")
        assert files_of(run_dir) == before  # not one byte: no second run_start/run_end, no lock written

    shorter = gdfr("train", "--resume", run_dir, "--epochs", 1)
    assert shorter.returncode == 2
    assert shorter.stderr.strip().splitlines()[-1] == (
        f"error: {run_dir}: --epochs 1: the run has trained 2 epoch(s); give more than 2 to extend it")
    assert files_of(run_dir) == before

    longer = gdfr("train", "--resume", run_dir, "--epochs", 4)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert (f"extending {run_dir}: 2 -> 4 epochs, milestones [1] -> [1, 2, 3] "
            "(the recipe's rule for a new length; docs/run-directory.md)") in longer.stdout
    assert "schedule: lr 0.1 for epoch 1, 0.02 for 2, 0.004 for 3, 0.0008 for 4" in longer.stdout
    log = events(run_dir)
    new = log[len([line for line in before["events.jsonl"].splitlines() if line.strip()]):]
    assert [e["event"] for e in new if e["event"] in ("extend", "run_start", "run_end")] == [
        "extend", "run_start", "run_end"]
    extend = next(e for e in new if e["event"] == "extend")
    assert {k: extend[k] for k in ("from_epochs", "epochs", "from_milestones", "milestones")} == {
        "from_epochs": 2, "epochs": 4, "from_milestones": [1], "milestones": [1, 2, 3]}
    start = next(e for e in new if e["event"] == "run_start")
    assert (start["initial_epoch"], start["epochs"], start["recipe"]["train"]["milestones"]) == (2, 4, [1, 2, 3])
    assert [(e["epoch"], e["epochs"], e["lr"]) for e in new if e["event"] == "epoch_end"] == [
        (3, 4, pytest.approx(0.004)), (4, 4, pytest.approx(0.0008))]
    assert new[-1]["status"] == "completed" and new[-1]["epoch"] == 4
    recipe = json.loads((run_dir / "recipe.json").read_text())["train"]
    assert (recipe["epochs"], recipe["milestones"]) == (4, [1, 2, 3])  # a later --resume keeps the new length
