"""Plain tests of the launcher's pure modules: runs, launch, recipes, model_info."""

from __future__ import annotations

import datetime
import os
import sys

import pytest

from launcher.launch import Overrides, new_run_dir, resume_command, run_status, train_command
from launcher.model_info import parse_json_object
from launcher.recipes import find_key, list_recipe_entries, parse_sets, recipe_facts, validate
from launcher.formatting import format_count, format_duration, format_percent
from launcher.run_index import RunIndex, tail_lines
from launcher.runs import EventTail, RunState
from tests.test_tui_fixtures import T0, epoch_events, run_start, write_fixture_runs, write_recipes

# EventTail -------------------------------------------------------------------


def test_tail_reads_only_new_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []  # missing file: no events yet
    path.write_text('{"event": "a", "time": 1}\n{"event": "b", "ti')
    assert [e["event"] for e in tail.read_new()] == ["a"]
    assert tail.read_new() == []  # the partial line stays unread
    with open(path, "a") as handle:
        handle.write('me": 2}\n{"event": "c", "time": 3}\n')
    assert [e["event"] for e in tail.read_new()] == ["b", "c"]
    assert tail.read_new() == []


def test_tail_skips_bad_lines_and_restarts_after_truncation(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('garbage\n[1, 2]\n{"event": "a", "time": 1}\n\n')
    tail = EventTail(path)
    assert [e["event"] for e in tail.read_new()] == ["a"]
    assert tail.bad_lines == 2
    path.write_text('{"event": "z", "time": 1}\n')  # replaced by a shorter file
    assert [e["event"] for e in tail.read_new()] == ["z"]


# RunState ---------------------------------------------------------------------


def fold(events):
    state = RunState()
    state.apply_all(events)
    return state


def test_state_folds_a_completed_run():
    events = [run_start("r", "tiny", "cifar10", 3), *epoch_events(3, 3)]
    events.append(dict(event="run_end", time=T0 + 95, status="completed", epoch=3, seconds=95.0,
                       best_val_accuracy=0.47, test={"accuracy": 0.46, "loss": 1.6}))
    state = fold(events)
    assert (state.status, state.epoch, state.epochs, state.variant) == ("completed", 3, 3, "tiny")
    assert state.series("val_accuracy") == ([1, 2, 3], [0.31, 0.39, 0.47])
    assert state.best_accuracy == 0.47 and state.final_accuracy == 0.47 and state.test_accuracy == 0.46
    assert state.mean_epoch_seconds == 30.0
    assert state.eta_seconds() is None  # finished


def test_state_eta_comes_from_events_not_the_clock():
    events = [run_start("r", "tiny", "cifar10", 4), *epoch_events(4, 2, seconds=50.0),
              dict(event="progress", time=T0 + 125, epoch=3, step=8, steps=16, loss=1.0, accuracy=0.5)]
    state = fold(events)
    assert state.status == "running" and state.epoch_fraction == 0.5
    assert state.eta_seconds() == pytest.approx((4 - 2 - 0.5) * 50.0)
    first = fold([run_start("r", "tiny", "cifar10", 2),
                  dict(event="progress", time=T0 + 10, epoch=1, step=4, steps=16, loss=1, accuracy=0)])
    assert first.eta_seconds() == pytest.approx(40.0 * 1.75)  # 10 s for a quarter epoch


def test_state_resume_and_error():
    events = [run_start("r", "tiny", "cifar10", 5), *epoch_events(5, 2),
              dict(event="run_end", time=T0 + 70, status="interrupted", epoch=2, seconds=70.0,
                   best_val_accuracy=0.39, test=None)]
    state = fold(events)
    assert state.status == "interrupted" and state.test_accuracy is None
    state.apply(run_start("r", "tiny", "cifar10", 5, time=T0 + 100, initial_epoch=2))
    assert state.status == "running" and state.epoch == 2 and state.end is None
    state.apply_all(epoch_events(5, 1, start=T0 + 100, first=3))
    state.apply(dict(event="error", time=T0 + 140, kind="nan_loss", message="loss became NaN"))
    state.apply(dict(event="run_end", time=T0 + 141, status="failed", epoch=3, seconds=41.0,
                     best_val_accuracy=0.47, test=None))
    assert state.status == "failed" and state.epoch == 3
    assert state.series("val_accuracy")[0] == [1, 2, 3]
    assert state.error_message == "nan_loss: loss became NaN"


def test_running_without_process_is_crashed():
    state = fold([run_start("r", "tiny", "cifar10", 3, pid=123)])
    assert state.effective_status(alive=lambda pid: True) == "running"
    assert state.effective_status(alive=lambda pid: False) == "crashed"


class FakeProcess:
    def __init__(self, returncode=None, stop_requests=0, started=T0):
        self.returncode, self.stop_requests, self.started = returncode, stop_requests, started
        self.running = returncode is None


@pytest.mark.parametrize(
    "events, process, expected",
    [
        ([], FakeProcess(), "starting"),
        ([run_start("r", "tiny", "c", 3, time=T0 + 1)], FakeProcess(), "running"),
        ([run_start("r", "tiny", "c", 3, time=T0 + 1)], FakeProcess(stop_requests=1), "stopping"),
        ([run_start("r", "tiny", "c", 3, time=T0 + 1),
          dict(event="run_end", time=T0 + 5, status="interrupted", epoch=0)], FakeProcess(0, 1), "interrupted"),
        ([], FakeProcess(returncode=2), "crashed (exit 2)"),
        # a resume that died before its run_start: the old run_end is not its status
        ([dict(event="run_end", time=T0 - 50, status="interrupted", epoch=1)], FakeProcess(1), "crashed (exit 1)"),
        ([dict(event="run_end", time=T0 - 50, status="interrupted", epoch=1)], FakeProcess(), "starting"),
    ],
)
def test_run_status_with_our_process(events, process, expected):
    assert run_status(fold(events), process) == expected


# RunIndex ----------------------------------------------------------------------


def test_index_lists_runs_newest_first_and_reads_incrementally(tmp_path):
    runs = write_fixture_runs(tmp_path, running_pid=os.getpid(), broken=True)
    index = RunIndex(tmp_path)
    records, skipped = index.refresh()
    assert records[0].path.name == runs["running"].name
    assert len(skipped) == 2
    running = next(r for r in records if r.path.name == runs["running"].name)
    offset = running.tail.offset
    with open(runs["running"] / "events.jsonl", "a") as handle:
        handle.write('me": 1764328530.0, "epoch": 3, "step": 12, "steps": 16, "loss": 1.7, "accuracy": 0.3}\n')
    records, _ = index.refresh()
    running = next(r for r in records if r.path.name == runs["running"].name)
    assert running.tail.offset > offset and running.state.step == 12
    assert RunIndex(tmp_path / "missing").refresh() == ([], [])


def test_index_skips_unreadable_events(tmp_path):
    runs = write_fixture_runs(tmp_path)
    os.remove(runs["completed"] / "events.jsonl")
    os.mkdir(runs["completed"] / "events.jsonl")  # reading it fails (IsADirectoryError)
    records, skipped = RunIndex(tmp_path).refresh()
    assert runs["completed"].name not in {r.path.name for r in records}
    assert [s.path.name for s in skipped] == [runs["completed"].name]
    assert "unreadable" in skipped[0].reason


def test_tail_lines_keeps_the_last_progress_state(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(b"start\n1/4 [=>..]\r2/4 [==>.]\r4/4 [====]\nTest accuracy: 0.5\n\n")
    assert tail_lines(path, 2) == ["4/4 [====]", "Test accuracy: 0.5"]
    assert tail_lines(tmp_path / "none.log") == []


@pytest.mark.parametrize(
    "function, value, expected",
    [
        (format_percent, 0.4123, "41.2%"),
        (format_percent, None, "-"),
        (format_count, 812345, "0.81 M"),
        (format_count, 2.56e9, "2.56 G"),
        (format_count, 5000, "5.00 K"),
        (format_duration, 4.25, "4.2s"),
        (format_duration, 65, "1m 05s"),
        (format_duration, 3725, "1h 02m"),
        (format_duration, None, "-"),
    ],
)
def test_formatting(function, value, expected):
    assert function(value) == expected


# Launch commands ---------------------------------------------------------------


def test_train_and_resume_commands(tmp_path):
    overrides = Overrides(epochs=2, batch_size=None, backend="jax", data="/d", limit_train=40,
                          limit_test=0, sets=("train.lr=0.05",))
    command = train_command("recipes/cifar10.toml", "tiny", overrides, tmp_path / "r", trainer=("gdfr",))
    assert command == ["gdfr", "train", "recipes/cifar10.toml", "--variant", "tiny",
                       "--set", "train.lr=0.05", "--epochs", "2", "--data", "/d",
                       "--limit-train", "40", "--limit-test", "0", "--run-dir", str(tmp_path / "r")]
    assert resume_command(tmp_path / "r", trainer=("gdfr",)) == ["gdfr", "train", "--resume", str(tmp_path / "r")]
    assert train_command("x.toml", "tiny", Overrides(), "r")[:4] == [sys.executable, "-m", "keras_gdfr.cli", "train"]


def test_new_run_dir_is_unique(tmp_path):
    now = datetime.datetime(2026, 11, 28, 7, 15, 0)
    first = new_run_dir(tmp_path, "cifar10", "tiny", now)
    assert first.name == "cifar10-tiny-20261128-071500"
    first.mkdir()
    assert new_run_dir(tmp_path, "cifar10", "tiny", now).name == "cifar10-tiny-20261128-071500-2"


# Recipes -------------------------------------------------------------------------


def test_recipes_listing_and_facts(tmp_path):
    folder = write_recipes(tmp_path / "recipes")
    entries = list_recipe_entries(folder)
    assert [(e.name, e.dataset) for e in entries] == [
        ("cifar10", "cifar10"), ("imagenette", "imagenette"), ("svhn", "svhn")]
    facts = recipe_facts(folder / "svhn.toml")
    assert (facts["epochs"], facts["lr"], facts["milestones"], facts["gamma"]) == (200, 0.1, [60, 120, 160], 0.2)
    assert facts["batch_size"] == 128 and facts["num_classes"] == 10  # from the dataset spec
    assert list_recipe_entries(tmp_path / "none") == []
    (folder / "broken.toml").write_text("[train\nepochs = ")
    assert recipe_facts(folder / "broken.toml")["error"]


def test_find_key_prefers_the_shallowest():
    document = {"train": {"epochs": 3, "lr": 0.1}, "model": {"overrides": {"lr": 9}}}
    assert find_key(document, ("lr",)) == 0.1
    assert find_key(document, ("learning_rate", "epochs")) == 3
    assert find_key(document, ("missing",)) is None


def test_parse_sets():
    assert parse_sets('train.lr=0.05 run.name="a b"') == (("train.lr=0.05", "run.name=a b"), None)
    assert parse_sets('run.name="a')[1] == "--set: No closing quotation"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (Overrides(epochs=0), "Invalid value for '--epochs': 0 is not in the range x>=1."),
        (Overrides(batch_size=0), "Invalid value for '--batch-size': 0 is not in the range x>=1."),
        (Overrides(limit_train=-1), "Invalid value for '--limit-train': -1 is not in the range x>=0."),
        (Overrides(data="/no/such/folder"), "--data /no/such/folder: no such file or folder"),
        (Overrides(backend="theano"), "KERAS_BACKEND must be one of torch, tensorflow, jax, got 'theano'"),
        (Overrides(sets=("train.lr",)),
         "{r}: --set 'train.lr': expected KEY=VALUE with a dotted key, e.g. train.epochs=3 or model.overrides.reduction=8"),
        (Overrides(sets=("epochs=3",)), "{r}: --set 'epochs=3': 'epochs' is not a dotted key"),
        (Overrides(epochs=2, limit_train=0, limit_test=40, sets=("train.lr=0.05",)), None),
    ],
)
def test_validate_refuses_like_the_cli(tmp_path, overrides, message):
    recipe = write_recipes(tmp_path / "recipes") / "cifar10.toml"
    result = validate(recipe, "tiny", overrides)
    if message is None:
        assert result is None
    else:  # load_recipe's own wording (which may add a did-you-mean)
        assert result is not None and result.startswith(message.format(r=recipe))


def test_validate_uses_load_recipe(tmp_path):
    recipe = write_recipes(tmp_path / "recipes") / "cifar10.toml"
    message = validate(recipe, "tiny", Overrides(sets=("train.momentum=2",)))
    assert message is not None and message.startswith(f"{recipe}: train.momentum: ")


def test_validate_refuses_a_used_run_directory(tmp_path):
    recipe = write_recipes(tmp_path / "recipes") / "cifar10.toml"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert validate(recipe, "tiny", Overrides(run_dir=str(tmp_path / "run"))) == (
        f"{tmp_path / 'run'}: run directory already exists and is not empty; pass --resume {tmp_path / 'run'} to continue it"
    )
    assert validate(recipe, "tiny", Overrides(run_dir=str(tmp_path / "new"))) is None


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["x.toml", "--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range x>=1."),
        (["x.toml", "--limit-test", "-3"], "Invalid value for '--limit-test': -3 is not in the range x>=0."),
        (["x.toml", "--epochs", "2"], None),
    ],
)
def test_cli_check_gives_clicks_messages(arguments, message):
    from launcher.recipes import cli_check

    assert cli_check(arguments) == message


# model_info --------------------------------------------------------------------


def test_parse_json_object():
    assert parse_json_object('{"params": 1}') == {"params": 1}
    assert parse_json_object('Using torch\n{"params": 2, "macs": 3}\n') == {"params": 2, "macs": 3}
    assert parse_json_object("nothing") is None
