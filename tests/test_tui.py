"""The launcher driven through Textual's pilot: launch, watch, stop, resume, fail, history, compare, quit.

Most tests run the fake `gdfr` of tests/test_tui_fixtures.py, which writes real
events per docs/run-directory.md in a fraction of a second. One test trains
for real with `python -m keras_gdfr.cli train` and skips until that command exists.
"""

from __future__ import annotations

import asyncio
import io
import os
import pathlib
import subprocess
import sys
import time

import pytest
from rich.console import Console
from textual.widgets import DataTable, ProgressBar, Static

from launcher.app import make_app
from launcher.model_info import InfoError, gdfr_info
from launcher.screens.compare import CompareScreen
from launcher.screens.confirm_quit import ConfirmQuit
from launcher.screens.history import HistoryScreen
from launcher.screens.launch import LaunchScreen
from launcher.screens.run import RunScreen
from launcher.widgets.confusion import ConfusionMatrix
from launcher.widgets.curves import CurvesPlot
from launcher.widgets.launch_form import LaunchForm
from launcher.widgets.recipe_details import RecipeDetails
from launcher.widgets.run_progress import RunTitle
from launcher.widgets.run_table import RunTable
from launcher.widgets.variant_list import VariantList
from tests.test_tui_fixtures import fake_info, write_fake_gdfr, write_fixture_runs, write_recipes

pytestmark = pytest.mark.asyncio

REPO = pathlib.Path(__file__).resolve().parents[1]
SIZE = (120, 36)


async def wait_for(pilot, predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Lets the app run until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.1)


def text_of(widget) -> str:
    """The plain text a widget renders (a Static's content, a Rich renderable), unwrapped."""
    rendered = widget.render()
    if hasattr(rendered, "plain"):
        return rendered.plain
    console = Console(width=400, file=io.StringIO(), record=True)
    console.print(rendered)
    return console.export_text()


def status_of(app) -> str:
    return app.screen.query_one(RunTitle).status if isinstance(app.screen, RunScreen) else ""


@pytest.fixture
def folders(tmp_path):
    return write_recipes(tmp_path / "recipes"), tmp_path / "runs"


@pytest.fixture
def fake_app(tmp_path, folders):
    recipes, runs = folders
    return make_app(recipes, runs, trainer=write_fake_gdfr(tmp_path / "bin"), model_info=fake_info(), backend="torch")


async def fill_and_launch(pilot, variant: str = "tiny", **fields: str) -> None:
    """Chooses a variant, types the form's fields, presses ctrl+r."""
    screen = pilot.app.screen
    assert isinstance(screen, LaunchScreen)
    screen.query_one(VariantList).select_variant(variant)
    for field, value in fields.items():
        await pilot.click(f"#{field.replace('_', '-')}")
        await pilot.press(*value)
    await pilot.press("ctrl+r")


async def stop_and_confirm(pilot) -> None:
    """Presses ctrl+s (stop) and answers the question with ctrl+y."""
    from launcher.screens.confirm import Confirm

    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, Confirm), what="the stop question")
    await pilot.press("ctrl+y")


# Launching ------------------------------------------------------------------------


async def test_launch_watch_and_finish(fake_app, folders):
    app = fake_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        details = app.screen.query_one(RecipeDetails)
        await wait_for(pilot, lambda: details.info.data is not None, what="model info")
        assert "0.81 M params" in text_of(details)
        await fill_and_launch(pilot, epochs="2", limit_train="40", limit_test="40")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        screen = app.screen
        await wait_for(pilot, lambda: status_of(app) == "completed", what="completed")
        bar = screen.query_one("#epoch-bar", ProgressBar)
        assert (bar.total, bar.progress) == (2, 2)
        accuracy = screen.query_one("#accuracy-plot", CurvesPlot).curves
        assert [c.label for c in accuracy] == ["train (step)", "val"]
        # one train point per progress event (4 steps an epoch), at the fractional epoch
        assert accuracy[0].x == pytest.approx((0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0))
        assert accuracy[0].y == pytest.approx((0.3,) * 4 + (0.4,) * 4)
        assert accuracy[1].x == (1, 2) and accuracy[1].y == pytest.approx((0.4, 0.5))
        assert screen.query_one("#loss-plot", CurvesPlot).curves[1].y == pytest.approx((1.8, 1.7))
        stats = text_of(screen.query_one("#run-stats", Static))
        assert "val 50.0% (best 50.0% @2)" in stats and "test 50.0%" in stats
        run_dir = screen.run_dir
        assert run_dir.parent == folders[1].absolute() and run_dir.name.startswith("cifar10-tiny-")
        await wait_for(pilot, lambda: (run_dir / "output.log").exists(), what="the log moved in")
        assert not (run_dir.parent / ".gdfr-tui").exists()
        log = (run_dir / "output.log").read_text()
        assert "--limit-train 40" in log and "Test accuracy" in log
        assert app.processes[run_dir].returncode == 0
        await pilot.press("e")
        await wait_for(pilot, lambda: screen.query_one(ConfusionMatrix).row_count == 2, what="eval table")


async def test_stop_then_resume(fake_app, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.25")
    app = fake_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await fill_and_launch(pilot, epochs="30")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        screen = app.screen
        await wait_for(pilot, lambda: screen.record.state.epoch >= 1, what="one epoch")
        await stop_and_confirm(pilot)
        await wait_for(pilot, lambda: status_of(app) == "interrupted", what="interrupted")
        state = screen.record.state
        done = state.epoch
        assert state.end["status"] == "interrupted"
        await pilot.press("ctrl+r")  # resume: gdfr train --resume RUN_DIR
        await wait_for(pilot, lambda: status_of(app) == "running", what="running again")
        assert state.initial_epoch == done
        assert app.processes[screen.run_dir].command[-2:] == ["--resume", str(screen.run_dir)]
        await stop_and_confirm(pilot)
        await wait_for(pilot, lambda: status_of(app) == "interrupted", what="interrupted again")


async def test_failing_run_shows_its_error_event(fake_app, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_AT_EPOCH", "1")
    app = fake_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await fill_and_launch(pilot, epochs="3")
        await wait_for(pilot, lambda: status_of(app) == "failed", what="failed")
        banner = app.screen.query_one("#run-error", Static)
        assert banner.display and "nan_loss: loss became NaN at epoch 1, step 3" in text_of(banner)
        await pilot.press("escape", "h")  # the launcher stays usable
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")


async def test_crash_before_any_event_shows_stderr(fake_app, monkeypatch):
    monkeypatch.setenv("FAKE_EXIT_MESSAGE", "Error: recipes/x.toml: data.dataset: expected one of cifar10")
    app = fake_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await fill_and_launch(pilot, epochs="1")
        await wait_for(pilot, lambda: status_of(app).startswith("crashed"), what="crashed")
        assert status_of(app) == "crashed (exit 2)"
        assert "data.dataset: expected one of cifar10" in text_of(app.screen.query_one("#run-error", Static))
        assert app.screen.check_action("resume", ()) is False  # no recipe.json: nothing to resume


async def test_form_refuses_invalid_values(fake_app, folders):
    app = fake_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        form = app.screen.query_one(LaunchForm)
        await fill_and_launch(pilot, epochs="0")
        await wait_for(pilot, lambda: form.error != "", what="an error")
        assert form.error == "Invalid value for '--epochs': 0 is not in the range x>=1."
        assert form.query_one("#form-error").has_class("-error")
        form.set_value("epochs", "2")
        form.set_value("sets", "train.lr")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: form.error != "", what="an error")
        recipe = folders[0] / "cifar10.toml"
        assert form.error.startswith(f"{recipe}: --set 'train.lr': expected KEY=VALUE with a dotted key")
        form.set_value("sets", "")
        form.set_value("data", "/no/such/data")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: form.error != "", what="an error")
        assert form.error == "--data /no/such/data: no such file or folder"
        assert isinstance(app.screen, LaunchScreen) and not app.processes


async def test_model_info_pending_then_error(tmp_path, folders):
    release = asyncio.Event()

    async def slow_failing_info(recipe, variant):
        await release.wait()
        raise InfoError("No such command 'info'.")

    app = make_app(*folders, trainer=write_fake_gdfr(tmp_path / "bin"), model_info=slow_failing_info)
    async with app.run_test(size=SIZE) as pilot:
        details = app.screen.query_one(RecipeDetails)
        await wait_for(pilot, lambda: details.info.pending, what="pending")
        assert "… params · … MACs" in text_of(details)
        release.set()
        await wait_for(pilot, lambda: details.info.error is not None, what="the error")
        assert "gdfr info: No such command 'info'." in text_of(details)


async def test_gdfr_info_subprocess(tmp_path, folders):
    data = await gdfr_info(str(folders[0] / "cifar10.toml"), "tiny", trainer=write_fake_gdfr(tmp_path))
    assert (data["params"], data["macs"], data["variant"]) == (812345, 45678901, "tiny")
    with pytest.raises(InfoError, match="invalid choice"):
        await gdfr_info("x.toml", "tiny", trainer=[sys.executable, str(tmp_path / "fake_gdfr.py"), "nope"])


async def test_empty_recipes_folder(tmp_path):
    (tmp_path / "recipes").mkdir()
    app = make_app(tmp_path / "recipes", tmp_path / "runs", model_info=fake_info())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-no-recipes")
        assert "No recipes in" in text_of(app.screen.query_one("#recipes-empty", Static))
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen.query_one(LaunchForm).error.startswith("No recipe to launch")


# History and compare ---------------------------------------------------------------------


async def test_history_lists_runs_and_skips_broken_ones(tmp_path, folders):
    runs = write_fixture_runs(folders[1], running_pid=os.getpid(), broken=True)
    app = make_app(*folders, model_info=fake_info())
    notices: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        app.notify = lambda message, **kwargs: notices.append(message)
        await pilot.press("h")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 5, what="five runs")
        rows = {row.record.path.name: (row.status, row.record.state) for row in table.rows_shown.values()}
        status, state = rows[runs["completed"].name]
        assert status == "completed" and state.variant == "tiny" and state.dataset == "cifar10"
        assert (round(state.best_accuracy, 2), round(state.final_accuracy, 2)) == (0.47, 0.47)
        assert rows[runs["interrupted"].name][0] == "interrupted"
        assert rows[runs["failed"].name][0] == "failed"
        assert rows[runs["running"].name][0] == "running"
        assert sorted(notices) == [
            f"skipped {runs['garbage'].name}: events.jsonl has no readable events",
            f"skipped {runs['half_written'].name}: no events.jsonl",
        ]
        await pilot.pause(2.2)  # a refresh later: each skipped directory is reported once
        assert len(notices) == 2
        # open the finished run: curves and its eval.json
        table.move_cursor(row=table.get_row_index(str(runs["completed"])))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        await pilot.press("e")
        confusion = app.screen.query_one(ConfusionMatrix)
        await wait_for(pilot, lambda: confusion.row_count == 10, what="the confusion matrix")
        assert "accuracy 47.00%" in text_of(app.screen.query_one("#eval-summary", Static))
        assert len(app.screen.query_one("#accuracy-plot", CurvesPlot).curves[1].x) == 3


async def test_compare_two_runs(folders):
    runs = write_fixture_runs(folders[1])
    app = make_app(*folders, model_info=fake_info())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 4, what="four runs")
        await pilot.press("c")  # nothing marked: a hint, no screen
        assert isinstance(app.screen, HistoryScreen)
        for key in (runs["completed"], runs["completed2"]):
            table.move_cursor(row=table.get_row_index(str(key)))
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        screen = app.screen
        accuracy = screen.query_one("#compare-accuracy", CurvesPlot).curves
        assert sorted(len(c.x) for c in accuracy) == [3, 5]
        compare = screen.query_one("#compare-table", DataTable)
        assert len(compare.columns) == 3
        best = compare.get_row("best val acc")
        assert sorted(best[1:]) == ["47.00%", "76.00%"]


# Quitting ----------------------------------------------------------------------------------


async def test_quit_with_runs_in_flight_asks(fake_app, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.25")
    app = fake_app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await fill_and_launch(pilot, epochs="30")
        await wait_for(pilot, lambda: status_of(app) == "running", what="running")
        process = next(iter(app.processes.values()))
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), what="the question")
        await pilot.press("h", "q")  # ignored while the question is open
        assert isinstance(app.screen, ConfirmQuit) and len(app.screen_stack) == 3
        await pilot.press("escape")  # cancel: keep the app
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="back")
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit), what="the question")
        await pilot.click("#stop")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    process.popen.wait(timeout=30)
    events = (process.run_dir / "events.jsonl").read_text().splitlines()
    assert '"status": "interrupted"' in events[-1]


# The real trainer -----------------------------------------------------------------------------


def has_train_command() -> bool:
    """Whether `python -m keras_gdfr.cli` has a `train` command yet."""
    result = subprocess.run([sys.executable, "-m", "keras_gdfr.cli", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    return result.returncode == 0 and any(line.split()[:1] == ["train"] for line in result.stdout.splitlines())


@pytest.mark.slow
async def test_real_training_run(tmp_path, monkeypatch):
    if not has_train_command():
        pytest.skip("keras_gdfr.cli has no `train` command yet: this test launches the real trainer")
    from tests.data_fixtures import CIFAR_CLASSES, imagefolder

    # cifar10's recipe wants its 10 class folders: 4 train + 4 test images of each.
    data = imagefolder(tmp_path / "data", classes=CIFAR_CLASSES, per_class=(4, 4), splits=("train", "test"))
    monkeypatch.chdir(REPO)
    app = make_app(REPO / "recipes", tmp_path / "runs", backend=os.environ.get("KERAS_BACKEND", "torch"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await fill_and_launch(pilot, epochs="2", batch_size="8", limit_train="40", limit_test="40",
                              data=str(data))
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        screen = app.screen

        def log() -> str:
            return app.log_path(screen.run_dir).read_text()[-3000:]

        await wait_for(pilot, lambda: status_of(app) not in ("starting", "running"), timeout=900, what="the end")
        assert status_of(app) == "completed", log()
        assert screen.query_one("#accuracy-plot", CurvesPlot).curves[1].x == (1, 2)
        bar = screen.query_one("#epoch-bar", ProgressBar)
        assert (bar.total, bar.progress) == (2, 2)
        assert "test " in text_of(screen.query_one("#run-stats", Static)), log()


async def test_history_groups_a_sweeps_runs_and_shows_its_grid(folders):
    """sweep.json lists the completed tiny run and the interrupted net1 run (+ one not started): they are
    listed together, labelled, and the detail line shows the grid with each cell's status or accuracy."""
    import json

    runs = write_fixture_runs(folders[1])
    cells = [{"run_dir": runs["completed"].name, "recipe": "cifar10", "variant": "tiny", "seed": 0},
             {"run_dir": runs["interrupted"].name, "recipe": "cifar10", "variant": "net1", "seed": 0},
             {"run_dir": "cifar10-net1-s1", "recipe": "cifar10", "variant": "net1", "seed": 1}]
    (folders[1] / "sweep.json").write_text(json.dumps({"name": "tiny,net1 x cifar10 x 2 seeds", "cells": cells}))
    app = make_app(*folders, model_info=fake_info())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 4, what="four runs")
        shown = [(row.record.path.name, row.label.endswith(" · sweep")) for row in table.rows_shown.values()]
        # Newest first (failed, interrupted, completed2, completed), but the sweep's two together, in grid order.
        assert shown == [(runs["failed"].name, False), (runs["completed"].name, True),
                         (runs["interrupted"].name, True), (runs["completed2"].name, False)]
        table.move_cursor(row=table.get_row_index(str(runs["interrupted"])))
        await pilot.pause(0.2)
        detail = text_of(app.screen.query_one("#run-detail", Static))
        assert "sweep tiny,net1 x cifar10 x 2 seeds: 1/3 completed" in detail
        assert "cifar10 tiny  s0 47.0%" in detail and "cifar10 net1  s0 interrupted · s1 pending" in detail
        table.move_cursor(row=table.get_row_index(str(runs["completed2"])))
        await pilot.pause(0.2)
        assert "sweep" not in text_of(app.screen.query_one("#run-detail", Static))
