"""gdfr-tui as a training monitor: the defects of issue 12, each driven through the pilot.

Footer keys that follow the run, a second launcher stopping a run the first one
left training, crash and ETA handling, 80x24 layouts, the form's number fields,
the Size following `--set model...`, the full-schedule question, History's
labels/filter/delete, Compare's settings, the machine panel and step-level curves.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys

import pytest
from textual import events
from textual.widgets import DataTable, Input, Static
from textual.widgets._footer import FooterKey

from launcher.app import make_app
from keras_gdfr.training.runlock import is_locked
from launcher.owner import Owner, owner_alive, read_owner
from launcher.runs import RunState
from launcher.screens.compare import CompareScreen
from launcher.screens.confirm import Confirm
from launcher.screens.confirm_quit import ConfirmQuit
from launcher.screens.history import HistoryScreen
from launcher.screens.launch import LaunchScreen
from launcher.screens.run import RunScreen, failure_message
from launcher.widgets.confusion import ConfusionMatrix, confusion_layout
from launcher.widgets.curves import CurvesPlot
from launcher.widgets.launch_form import LaunchForm
from launcher.widgets.machine_panel import MachinePanel
from launcher.widgets.recipe_details import RecipeDetails
from launcher.widgets.run_progress import RunTitle, stats_text
from launcher.widgets.run_table import RunTable
from launcher.widgets.variant_list import VariantList
from tests.test_tui import fill_and_launch, status_of, stop_and_confirm, text_of, wait_for
from tests.test_tui_fixtures import (
    CIFAR_CLASSES,
    eval_json,
    fake_info,
    run_start,
    write_fake_gdfr,
    write_fixture_runs,
    write_recipes,
    write_run,
)


SMALL = (80, 24)


@pytest.fixture
def folders(tmp_path):
    return write_recipes(tmp_path / "recipes"), tmp_path / "runs"


async def launch_until_running(pilot, app, epochs: str) -> None:
    """Fills the launch form, presses ctrl+r and waits for the run screen to say `running`."""
    await pilot.pause()
    await fill_and_launch(pilot, epochs=epochs)
    await wait_for(pilot, lambda: status_of(app) == "running", what="running")


def app_on(tmp_path, folders, **options):
    return make_app(*folders, trainer=write_fake_gdfr(tmp_path / "bin"), model_info=options.pop("info", fake_info()),
                    backend="torch", **options)


def footer_keys(screen) -> set[str]:
    return {key.key for key in screen.query(FooterKey)}


# Footer ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_footer_follows_the_process_not_focus(tmp_path, folders, monkeypatch):
    """After the trainer exits, stop goes and resume comes without any key or focus change."""
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    monkeypatch.setenv("FAKE_EXIT_DELAY_S", "1.5")  # run_end first, the exit 1.5 s later
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await launch_until_running(pilot, app, epochs="30")
        screen = app.screen
        await wait_for(pilot, lambda: "ctrl+s" in footer_keys(screen), what="ctrl+s in the footer")
        await stop_and_confirm(pilot)
        await wait_for(pilot, lambda: status_of(app) == "interrupted", what="interrupted")
        process = app.processes[screen.run_dir]
        await wait_for(pilot, lambda: process.returncode is not None, what="the exit")
        await wait_for(pilot, lambda: "ctrl+r" in footer_keys(screen) and "ctrl+s" not in footer_keys(screen),
                       timeout=3, what="the footer to show ctrl+r and not ctrl+s")


@pytest.mark.asyncio
async def test_quit_dialog_has_its_own_footer(tmp_path, folders):
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.push_screen(ConfirmQuit(1))
        await pilot.pause(0.3)
        keys = footer_keys(app.screen)
        assert {"ctrl+s", "k", "escape"} <= keys
        assert "ctrl+r" not in keys  # not the launch screen's keys


# Runs owned by any instance --------------------------------------------------------


@pytest.mark.asyncio
async def test_second_instance_stops_a_run_the_first_left_running(tmp_path, folders, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    first = app_on(tmp_path, folders)
    async with first.run_test(size=SMALL) as pilot:
        await launch_until_running(pilot, first, epochs="50")
        run_dir = first.screen.run_dir
        process = first.processes[run_dir]
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(first.screen, ConfirmQuit), what="the question")
        await pilot.press("k")  # keep running
        await wait_for(pilot, lambda: not first.is_running, what="exit")
    assert process.running
    lock = json.loads((run_dir / "run.lock").read_text())
    assert lock["pid"] == process.pid and lock["host"] == socket.gethostname()

    second = app_on(tmp_path, folders)
    async with second.run_test(size=SMALL) as pilot:
        await pilot.press("h")
        table = second.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the run in History")
        assert next(iter(table.rows_shown.values())).status == "running"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(second.screen, RunScreen), what="the run screen")
        screen = second.screen
        await wait_for(pilot, lambda: f"pid {process.pid}" in text_of(screen.query_one(RunTitle)), what="the pid")
        await wait_for(pilot, lambda: "ctrl+s" in footer_keys(screen), what="ctrl+s offered")
        await stop_and_confirm(pilot)
        await wait_for(pilot, lambda: screen.record.state.status == "interrupted", what="interrupted")
    assert process.popen.wait(timeout=30) == 130


def test_lock_owner_and_stale_detection(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                  "started": 1.0, "backend": "jax"}))
    owner = read_owner(run_dir)
    assert owner == Owner(os.getpid(), socket.gethostname(), 1.0, "jax")
    assert is_locked(run_dir) is False
    assert not owner_alive(run_dir, owner)  # the pid lives but nobody holds the flock: stale
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); "
        "time.sleep(60)"), str(run_dir / "run.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_locked(run_dir) is True and owner_alive(run_dir, owner)
        assert not owner_alive(run_dir, Owner(os.getpid(), "another-host"))  # never signalled across hosts
    finally:
        holder.kill()
        holder.wait()
    # No lock file: run_start's pid, alive or not.
    (run_dir / "run.lock").unlink()
    state = RunState()
    state.apply(run_start("r", "tiny", "cifar10", 3, pid=os.getpid()))
    assert owner_alive(run_dir, read_owner(run_dir, state))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state.apply(run_start("r", "tiny", "cifar10", 3, pid=dead.pid))
    assert not owner_alive(run_dir, read_owner(run_dir, state))


# Crashes, ETA, best -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_kill_9_says_killed_drops_eta_and_resume_starts_clean(tmp_path, folders, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.3")
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await launch_until_running(pilot, app, epochs="30")
        screen = app.screen
        await wait_for(pilot, lambda: screen.record.state.epoch >= 1 and screen.record.state.step >= 2,
                       what="an epoch and steps")
        assert "ETA" in text_of(screen.query_one("#run-stats", Static))
        process = app.processes[screen.run_dir]
        os.kill(process.pid, signal.SIGKILL)
        await wait_for(pilot, lambda: status_of(app) == "crashed (exit -9)", what="crashed")
        banner = text_of(screen.query_one("#run-error", Static))
        assert "killed by SIGKILL" in banner and "Epoch" not in banner
        stats = text_of(screen.query_one("#run-stats", Static))
        assert "ETA" not in stats and "train " not in stats
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: status_of(app) == "running", what="running again")
        state = screen.record.state
        assert state.train_accuracy is None or state.progress_epoch is not None  # no value of the old segment
        assert all(point.x <= state.initial_epoch or point.time >= state.segment_start for point in state.steps_log)
        await stop_and_confirm(pilot)
        await wait_for(pilot, lambda: status_of(app) == "interrupted", what="interrupted")


def test_best_of_a_run_stopped_in_its_first_epoch_is_unknown():
    state = RunState()
    state.apply(run_start("r", "tiny", "cifar10", 3))
    state.apply({"event": "run_end", "time": 2.0, "status": "interrupted", "epoch": 0, "best_val_accuracy": -1.0})
    assert state.best_accuracy is None
    assert "-100" not in stats_text(state).plain and "best -)" in stats_text(state).plain


def test_crash_message_without_an_error_line():
    state = RunState()
    state.apply(run_start("r", "tiny", "cifar10", 200))
    message = failure_message(state, "crashed (exit -9)", ["$ gdfr train ...", "Epoch 1/200"])
    assert message.startswith("the trainer ended without writing run_end (killed by SIGKILL)")
    assert failure_message(state, "crashed (exit 1)", ["Epoch 1/200", "error: data/x: no such file"]) == \
        "error: data/x: no such file"


# 80x24 --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_form_error_wraps_at_80x24(tmp_path, folders):
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        form = app.screen.query_one(LaunchForm)
        message = ("recipes/cifar10.toml: train.lrr: unknown key; did you mean 'train.lr'? "
                   "(from --set train.lrr=1)")
        form.error = message
        await pilot.pause(0.2)
        label = form.query_one("#form-error")
        assert label.size.height >= 2
        assert "did you mean 'train.lr'?" in text_of(label)


@pytest.mark.asyncio
async def test_run_header_and_confusion_fit_80x24(tmp_path, folders):
    runs = write_fixture_runs(folders[1])
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        app.push_screen(RunScreen(runs["completed"].absolute()))
        await pilot.pause(0.3)
        title = app.screen.query_one(RunTitle)
        assert title.size.height >= 2 and "2000/500 images" in text_of(title)
        await pilot.press("e")
        await pilot.pause(0.5)
        table = app.screen.query_one(ConfusionMatrix)
        assert table.row_count == 10 and len(table.columns) == 12
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width
        assert table.get_row("3")[0].plain == "3 cat"  # the row label names the class
        assert [c.label.plain for c in table.columns.values()][1:4] == ["0", "1", "2"]


def test_confusion_layout_uses_names_when_they_fit():
    matrix = eval_json()["confusion_matrix"]
    assert confusion_layout(CIFAR_CLASSES, matrix, 160)[2] is False
    assert confusion_layout(CIFAR_CLASSES, matrix, 78)[2] is True


@pytest.mark.asyncio
async def test_history_labels_tell_same_variant_runs_apart(tmp_path, folders):
    runs_dir = folders[1]
    for index, lr in enumerate((0.1, 0.05)):
        name = f"cifar10-tiny-2026112{index}-000000"
        start = run_start(name, "tiny", "cifar10", 3, time=1764314100.0 + 60 * index)
        start["recipe"] = {"data": {"dataset": "cifar10"}, "model": {"variant": "tiny"}, "train": {"lr": lr},
                           "run": {"name": name}}
        write_run(runs_dir, name, [start])
    # A run that failed before run_start: newest (its events' own time), named from recipe.json.
    failed = write_run(runs_dir, "cifar10-net5-20261122-000000", [
        {"event": "error", "time": 1764314100.0 + 600, "kind": "data", "message": "DataError: no images"},
        {"event": "run_end", "time": 1764314100.0 + 601, "status": "failed", "epoch": 0}])
    (failed / "recipe.json").write_text(json.dumps({"data": {"dataset": "cifar10"}, "model": {"variant": "net5"}}))
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("h")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 3, what="three runs")
        labels = [str(table.get_row_at(i)[2]) for i in range(3)]
        assert labels[0].startswith("net5 11-28 07:") and table.get_row_at(0)[3] == "cifar10"
        assert labels[1].endswith("lr=0.05") and labels[2].endswith("lr=0.1")
        # filter, then delete with confirmation
        await pilot.press("slash", *"lr=0.05", "enter")
        await wait_for(pilot, lambda: table.row_count == 1, what="the filter")
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        await pilot.press("n")
        assert (runs_dir / "cifar10-tiny-20261121-000000").is_dir()
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        await pilot.press("y", "enter", "tab", "enter")  # neither a letter nor Tab/Enter confirms
        assert (runs_dir / "cifar10-tiny-20261121-000000").is_dir() and not isinstance(app.screen, Confirm)
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: not (runs_dir / "cifar10-tiny-20261121-000000").exists(), what="deleted")


@pytest.mark.asyncio
async def test_compare_shows_the_settings_that_differ(tmp_path, folders):
    runs_dir = folders[1]
    paths = []
    for index, lr in enumerate((0.1, 0.05)):
        name = f"cifar10-tiny-2026112{index}-000000"
        start = run_start(name, "tiny", "cifar10", 3, time=1764314100.0 + 60 * index)
        start["recipe"] = {"model": {"variant": "tiny"}, "train": {"lr": lr, "limit": 3}}
        paths.append(write_run(runs_dir, name, [start]).absolute())
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        app.push_screen(CompareScreen(paths))
        await pilot.pause(0.5)
        table = app.screen.query_one("#compare-table", DataTable)
        assert table.get_row("setting:train.lr")[1:] == ["0.1", "0.05"]
        with pytest.raises(Exception):
            table.get_row("setting:train.limit")  # the same in both: not a difference
        legend = [c.label for c in app.screen.query_one("#compare-accuracy", CurvesPlot).curves]
        assert legend[0].endswith("lr=0.1") and legend[1].endswith("lr=0.05")


# The launch form ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_number_fields_keep_and_name_letters_and_empty_is_fine(tmp_path, folders):
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        form = app.screen.query_one(LaunchForm)
        await pilot.click("#batch-size")
        await pilot.press("1", "a")
        batch = form.query_one("#batch-size", Input)
        assert batch.value == "1a"
        assert form.error == "Batch: '1a' is not a whole number (leave it empty for the recipe's value)"
        assert batch.has_class("-invalid")
        await pilot.press("backspace", "backspace")
        assert batch.value == "" and form.error == "" and not batch.has_class("-invalid")


@pytest.mark.asyncio
async def test_text_after_a_burst_of_tabs_lands_in_the_focused_field(tmp_path, folders):
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.click("#epochs")
        # All keys arrive at once, as when the app was busy while they were typed.
        for key, character in (("tab", None), ("tab", None), ("tab", None), ("4", "4"), ("2", "2")):
            app.post_message(events.Key(key, character))
        await pilot.pause(0.3)
        form = app.screen.query_one(LaunchForm)
        assert form.query_one("#epochs", Input).value == ""
        assert app.focused is form.query_one("#limit-train", Input)
        assert form.query_one("#limit-train", Input).value == "42"


@pytest.mark.asyncio
async def test_size_follows_model_sets(tmp_path, folders):
    calls: list = []
    app = app_on(tmp_path, folders, info=fake_info(calls=calls))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        details = app.screen.query_one(RecipeDetails)
        await wait_for(pilot, lambda: details.info.data is not None, what="model info")
        assert "0.81 M params" in text_of(details)
        app.screen.query_one(LaunchForm).set_value("sets", "model.overrides.widths=[8,16,16,32] train.lr=0.05")
        await wait_for(pilot, lambda: "0.91 M params" in text_of(details), what="the new size")
        assert calls[-1] == ("cifar10", "gdfrnet", "model.overrides.widths=[8,16,16,32]")


@pytest.mark.asyncio
async def test_full_schedule_launch_asks_first(tmp_path, folders):
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.screen.query_one(VariantList).select_variant("tiny")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
        assert "full 200 epochs" in text_of(app.screen.query_one("#confirm-title"))
        await pilot.press("n")
        await pilot.pause(0.2)
        assert isinstance(app.screen, LaunchScreen) and not app.processes


@pytest.mark.asyncio
async def test_h_from_a_run_opened_in_history_goes_back_to_the_list(tmp_path, folders):
    runs = write_fixture_runs(folders[1])
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("h")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 4, what="runs")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history again")
        await pilot.press("enter", "l")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen), what="launch")


# Step-level curves and the machine panel -----------------------------------------------------


@pytest.mark.asyncio
async def test_step_points_before_the_first_epoch_ends_and_machine_panel(tmp_path, folders, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "1.5")  # 6 s epochs: time for two redraws inside the first
    app = app_on(tmp_path, folders)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await fill_and_launch(pilot, epochs="5")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        screen = app.screen
        plot = screen.query_one("#accuracy-plot", CurvesPlot)
        await wait_for(pilot, lambda: plot.curves and len(plot.curves[0].x) >= 2, what="step points")
        assert screen.record.state.epoch == 0  # still inside epoch 1
        assert plot.curves[0].label == "train (step)" and plot.curves[0].x[:2] == (0.25, 0.5)
        await pilot.press("m")
        panel = screen.query_one(MachinePanel)
        pid = app.processes[screen.run_dir].pid
        await wait_for(pilot, lambda: f"pid {pid}" in panel.text and "RSS" in panel.text, what="figures")
        text = panel.text
        assert "host" in text and "cores" in text and "images/s" in text
        await stop_and_confirm(pilot)
        await wait_for(pilot, lambda: status_of(app) == "interrupted", what="interrupted")


def test_images_per_second_from_progress_events():
    state = RunState()
    state.apply(run_start("r", "tiny", "cifar10", 3))  # batch 128
    state.apply({"event": "progress", "time": 10.0, "epoch": 1, "step": 2, "steps": 16, "loss": 2.0, "accuracy": 0.1})
    state.apply({"event": "progress", "time": 12.0, "epoch": 1, "step": 6, "steps": 16, "loss": 1.9, "accuracy": 0.2})
    assert state.images_per_second() == pytest.approx(4 * 128 / 2.0)
    assert [p.x for p in state.steps_log] == [pytest.approx(2 / 16), pytest.approx(6 / 16)]


def test_what_a_run_produced(tmp_path):
    from launcher.screens.run import produced_text

    run_dir = write_run(tmp_path / "runs", "r1", [run_start("r1", "tiny", "cifar10", 3)], evaluation=eval_json(),
                        output="Epoch 1/3\n")
    (run_dir / "events.out.tfevents.1.vm.1.0").write_bytes(b"")
    (run_dir / "figures").mkdir()
    (run_dir / "figures" / "r1-confusion.png").write_bytes(b"")
    lines = produced_text(run_dir).splitlines()
    assert lines == ["evaluation: eval.json", "figure: figures/r1-confusion.png",
                     "TensorBoard: events.out.tfevents.1.vm.1.0", "log: output.log",
                     f"tensorboard --logdir {run_dir.parent}", f"gdfr report {run_dir}"]


@pytest.mark.asyncio
async def test_report_of_the_marked_runs(tmp_path, folders):
    runs = write_fixture_runs(folders[1])
    app = app_on(tmp_path, folders)
    notices: list[str] = []
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("h")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 4, what="runs")
        app.notify = lambda message, **kwargs: notices.append(message)
        for key in (runs["completed"], runs["completed2"]):
            table.move_cursor(row=table.get_row_index(str(key.absolute())))
            await pilot.press("space")
        await pilot.press("g")
        await wait_for(pilot, lambda: any("report.md" in n for n in notices), what="the report notice")
    written = next(n for n in notices if "report.md" in n)
    out = pathlib.Path(written.splitlines()[0])
    assert out.parent == folders[1].absolute() / ".gdfr-tui"
    assert sorted(runs["completed"].name in line or runs["completed2"].name in line
                  for line in (out / "report.md").read_text().splitlines()[1:]) == [True, True]
    assert f"figures/{runs['completed'].name}-confusion.png" in written


def _panel_text(state: RunState) -> str:
    from rich.console import Console

    from launcher.machine import MachineSample
    from launcher.widgets.machine_panel import machine_table

    console = Console(width=100, record=True)
    console.print(machine_table(state, "running", MachineSample(), 4321, None))
    return console.export_text()


def test_machine_panel_shows_the_data_parallel_layout_of_a_distributed_run():
    """run_start's replicas / per-device batch (issue 10) reach the machine panel; one device adds no line."""
    start = {"event": "run_start", "time": 1.0, "backend": "torch", "batch_size": 128, "pid": 4321,
             "devices": ["cpu:0"], "replicas": 2, "processes": 2, "per_device_batch": 64,
             "distribution": "torch DistributedDataParallel-style all-reduce (gloo)"}
    state = RunState()
    state.apply(start)
    text = _panel_text(state)
    assert "2 replicas in 2 process(es) · batch 128 = 64 a device · torch" in text
    single = RunState()
    single.apply({**start, "replicas": 1, "processes": 1, "per_device_batch": 128})
    assert "replicas" not in _panel_text(single)


def test_best_epoch_is_the_first_epoch_that_reached_the_best_accuracy():
    state = RunState()
    for epoch, acc in [(1, 0.2), (2, 0.5), (3, None), (4, 0.5), (5, 0.4)]:
        state.apply({"event": "epoch_end", "time": float(epoch), "epoch": epoch, "val_accuracy": acc,
                     "loss": 1.0, "accuracy": 0.1})
    assert state.best_epoch == 2
    assert state.series("val_accuracy") == ([1, 2, 4, 5], [0.2, 0.5, 0.5, 0.4])
    assert RunState().best_epoch is None
