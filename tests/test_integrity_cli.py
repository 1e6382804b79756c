"""`gdfr train` on damaged, foreign or wrong inputs (issue 13): one line, non-zero exit, nothing saved lost."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from tests import data_fixtures as fx
from tests.test_training import SMALL, events, gdfr

TINY = [*SMALL[:-1], "32"]  # batch 32: 64 images make 2 steps


def error_line(result) -> str:
    """The one line a failure must end with; no traceback before it."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr[-3000:]
    return lines[-1]


def snapshot(run_dir: pathlib.Path) -> dict:
    """Every saved file's bytes; events.jsonl only grows (a refusal appends its error), run.lock is the last holder."""
    files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    files.pop("run.lock", None)
    return files


def assert_kept(run_dir: pathlib.Path, before: dict) -> None:
    after = snapshot(run_dir)
    events_before = before.pop("events.jsonl", b"")
    assert after.pop("events.jsonl", b"").startswith(events_before)
    assert after == before


@pytest.fixture(scope="module")
def base_run(cifar10_zip, tmp_path_factory) -> pathlib.Path:
    """A completed 2-epoch run, copied by each test before it damages it."""
    run_dir = tmp_path_factory.mktemp("base") / "run"
    result = gdfr("train", "recipes/cifar10.toml", *TINY, "--data", cifar10_zip, "--limit-train", 64,
                  "--limit-test", 32, "--epochs", 2, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def copy_run(base: pathlib.Path, tmp_path: pathlib.Path, **train) -> pathlib.Path:
    run_dir = tmp_path / "run"
    shutil.copytree(base, run_dir)
    if train:
        recipe = json.loads((run_dir / "recipe.json").read_text())
        recipe["train"].update(train)
        (run_dir / "recipe.json").write_text(json.dumps(recipe))
    return run_dir


def test_missing_pointer_torn_event_and_temp_files_resume_from_the_newest_epoch(base_run, tmp_path):
    run_dir = copy_run(base_run, tmp_path, epochs=3)
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "last.json").unlink()
    with open(run_dir / "events.jsonl", "a") as file:
        file.write('{"event": "progress", "epo')  # killed mid-line
    left = [checkpoints / ".epoch-0003.a1b2c3", run_dir / ".model.keras.tmp-deadbeef.keras"]
    left[0].mkdir()
    left[1].write_bytes(b"half a model")
    lines_before = len((run_dir / "events.jsonl").read_text().splitlines())

    result = gdfr("train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f"warning: {checkpoints / 'last.json'} is missing; resuming from the newest complete checkpoint, "
            "epoch-0002") in result.stderr
    assert "Skipping variable loading" not in result.stderr  # Keras's alarming optimizer warning, on every resume
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    torn = [i for i, line in enumerate(lines) if line == '{"event": "progress", "epo']
    assert torn == [lines_before - 1]  # it stays a line of its own; every later event is whole
    log = [json.loads(line) for i, line in enumerate(lines) if i not in torn]
    assert [e["initial_epoch"] for e in log if e["event"] == "run_start"] == [0, 2]
    assert [e["epoch"] for e in log if e["event"] == "epoch_end"] == [1, 2, 3]
    assert log[-1]["status"] == "completed"
    assert not any(p.exists() for p in left)
    assert json.loads((checkpoints / "last.json").read_text()) == {"dir": "epoch-0003"}
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.weights.h5", "epoch-0003", "last.json"]


@pytest.mark.parametrize("damage", ["no_epoch_dirs", "no_checkpoints_at_all"])
def test_resume_without_any_checkpoint_refuses_to_start_over(base_run, tmp_path, damage):
    run_dir = copy_run(base_run, tmp_path)
    if damage == "no_epoch_dirs":
        (run_dir / "checkpoints" / "last.json").unlink()
        shutil.rmtree(run_dir / "checkpoints" / "epoch-0002")
    else:
        shutil.rmtree(run_dir / "checkpoints")
    before = snapshot(run_dir)
    result = gdfr("train", "--resume", run_dir)
    assert result.returncode == 1
    line = error_line(result)
    assert "refusing to start" in line and "over from epoch 1" in line
    if damage == "no_checkpoints_at_all":
        assert "events.jsonl records checkpoints up to epoch 2" in line
    assert_kept(run_dir, before)  # model.keras, eval.json, best weights: untouched


@pytest.mark.parametrize("damage", ["optimizer.npz", "state.json", "architecture"])
def test_torn_checkpoint_or_changed_architecture_is_one_line_naming_the_file(base_run, tmp_path, damage):
    run_dir = copy_run(base_run, tmp_path, epochs=3)
    epoch_dir = run_dir / "checkpoints" / "epoch-0002"
    if damage == "architecture":  # in recipe.json and in the run_start it is checked against (issue 24)
        recipe = json.loads((run_dir / "recipe.json").read_text())
        recipe["model"]["overrides"]["widths"] = [8, 16, 16, 48]
        (run_dir / "recipe.json").write_text(json.dumps(recipe))
        log = events(run_dir)
        log[0]["recipe"]["model"]["overrides"]["widths"] = [8, 16, 16, 48]
        (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
        named = epoch_dir / "model.weights.h5"
    else:
        named = epoch_dir / damage
        named.write_bytes(named.read_bytes()[: len(named.read_bytes()) // 2])
    checkpoint_before = snapshot(run_dir / "checkpoints")
    result = gdfr("train", "--resume", run_dir)
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith(f"error: {named}: ") and len(line) < 600, line
    if damage == "architecture":
        assert "cannot load into this model" in line
    assert_kept(run_dir / "checkpoints", checkpoint_before)
    if damage != "state.json":  # (a torn state.json is caught before the run starts: nothing is written)
        assert events(run_dir)[-1]["event"] == "run_end" and events(run_dir)[-1]["status"] == "failed"


def test_different_train_and_test_classes_fail_and_the_fixed_command_reuses_the_run_dir(tmp_path):
    data = fx.imagefolder(tmp_path / "data", per_class=(3, 1), splits=("train", "test"))
    (data / "test" / "cat").rename(data / "test" / "kat")
    run_dir = tmp_path / "run"
    command = ["train", "recipes/cifar10.toml", *TINY, "--data", data, "--epochs", 1, "--run-dir", run_dir]
    result = gdfr(*command)
    assert result.returncode == 1
    line = error_line(result)
    assert "the train and test splits have different classes (only in train: cat; only in test: kat)" in line
    assert not run_dir.exists()  # a failed start leaves no run behind
    (data / "test" / "kat").rename(data / "test" / "cat")
    again = gdfr(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert events(run_dir)[-1]["status"] == "completed"


def test_smaller_failures_are_one_line_each(tmp_path):
    data = fx.imagefolder(tmp_path / "data", per_class=(2, 1), splits=("train", "test"))
    for image in (data / "train").rglob("*.png"):
        image.write_bytes(fx.truncated_png())
    blocked = tmp_path / "file"
    blocked.write_text("a file where the run directory's parent should be")

    unreadable = gdfr("train", "recipes/cifar10.toml", *TINY, "--data", data, "--epochs", 1, "--run-dir", tmp_path / "r1")
    assert unreadable.returncode == 1
    assert error_line(unreadable).startswith("error: no readable images: cifar10 train: 0 of 20 images")
    warning = [line for line in unreadable.stderr.splitlines() if "unreadable image(s)" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: ") and "skipped 20 unreadable image(s)" in warning[0]
    assert "warnings.warn(" not in unreadable.stderr  # Python's source line under the warning

    no_dir = gdfr("train", "recipes/cifar10.toml", *TINY, "--data", data, "--run-dir", blocked / "run")
    assert no_dir.returncode == 1
    assert error_line(no_dir) == f"error: {blocked / 'run'}: cannot create the run directory (Not a directory)"

    empty_report = gdfr("report", tmp_path / "data", "--out", tmp_path / "report")
    assert empty_report.returncode == 1
    assert error_line(empty_report) == f"error: no run directory (recipe.json + events.jsonl) in {tmp_path / 'data'}"


def test_eval_on_data_with_other_classes_is_refused(base_run, tmp_path):
    run_dir = copy_run(base_run, tmp_path)
    data = fx.imagefolder(tmp_path / "data", per_class=(1, 1), splits=("train", "test"))
    for split in ("train", "test"):
        (data / split / "cat").rename(data / split / "kat")
    before = snapshot(run_dir)
    result = gdfr("eval", run_dir, "--data", data)
    assert result.returncode == 1
    line = error_line(result)
    assert "differ from those the run trained on" in line and "kat" in line
    assert_kept(run_dir, before)  # eval.json not overwritten with shifted labels
