"""gdfr-tui as a newcomer met it (issue 22), each defect driven through the pilot.

Typed text that reached the run keys, the learning rate shown one epoch late,
History's columns at 80x24, a resumed run's total time, the Run screen and the
Output tab after a stop, the path toast, Compare's legend glyphs.
"""

from __future__ import annotations

import os
import re

import pytest
from textual.widgets._footer import FooterKey

from launcher.run_index import RunRecord
from launcher.runs import RunState
from launcher.screens.compare import METRICS, CompareScreen
from launcher.screens.confirm import Confirm
from launcher.screens.history import HistoryScreen
from launcher.screens.run import RunScreen
from launcher.widgets.curves import CurvesPlot
from launcher.widgets.run_progress import stats_text
from launcher.widgets.run_table import RunRow, RunTable
from tests.test_tui import text_of, wait_for
from tests.test_tui_fixtures import T0, epoch_events, run_start, write_fixture_runs, write_recipes, write_run
from tests.test_tui_monitor import SMALL, app_on


@pytest.fixture
def folders(tmp_path):
    return write_recipes(tmp_path / "recipes"), tmp_path / "runs"


@pytest.mark.asyncio
async def test_typed_text_outside_a_field_leaves_every_run_untouched(tmp_path, folders, monkeypatch):
    """The newcomer's slip: Tab past Limit test onto Launch, then a path typed there, then words on History."""
    runs = write_fixture_runs(folders[1], running_pid=os.getpid())
    app = app_on(tmp_path, folders)
    acted = []
    monkeypatch.setattr(app, "stop_run", lambda run_dir: acted.append(("stop", run_dir)))
    monkeypatch.setattr(app, "resume_run", lambda run_dir, backend=None: acted.append(("resume", run_dir)))
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.click("#limit-test")
        await pilot.press(*"500", "tab")
        assert app.focused.id == "launch"
        await pilot.press(*"../shared/data/cifar10-jpeg.zip")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), what="h: History")
        assert app.screen.query_one("#history-filter").value == "data/cifar10-jpeg.zip"  # '/' took the rest
        await pilot.press("ctrl+u", "enter")  # clear the filter, back to the table
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == len(runs), what="every run")
        for _ in range(len(runs)):  # each run under the cursor: words full of run keys
            await pilot.press(*"dry spot", "y", "down")
            await pilot.pause()
        assert not isinstance(app.screen, Confirm)
    assert acted == [] and app.processes == {}
    assert all(path.is_dir() for path in runs.values())


def test_the_lr_shown_is_the_epoch_being_trained():
    """lr 0.1, x0.2 at epoch 1: epoch 1 trains at 0.1, epochs 2 and 3 at 0.02 (the schedule's rule)."""
    start = run_start("r", "tiny", "cifar10", 3)
    start["recipe"]["train"] = {"lr": 0.1, "milestones": [1], "lr_gamma": 0.2, "epochs": 3}
    state = RunState()
    state.apply(start)
    shown = [lr_of(state)]  # during epoch 1
    for epoch, lr in ((1, 0.1), (2, 0.02), (3, 0.02)):
        state.apply(dict(event="progress", time=T0 + epoch, epoch=epoch, step=8, steps=16, loss=2.0, accuracy=0.3))
        shown.append(lr_of(state))  # during epoch `epoch`
        state.apply(dict(event="epoch_end", time=T0 + epoch + 0.5, epoch=epoch, epochs=3, loss=2.0, accuracy=0.3,
                         val_loss=2.0, val_accuracy=0.3, lr=lr, seconds=1.0))
        shown.append(lr_of(state))  # between epochs: the next one's
    state.apply(dict(event="run_end", time=T0 + 9, status="completed", epoch=3))
    assert shown == ["0.1", "0.1", "0.02", "0.02", "0.02", "0.02", "0.02"]
    assert lr_of(state) == "0.02"  # a finished run: its last epoch's rate
    # A recipe without a schedule (an older run_start): the last epoch_end's rate.
    plain = RunState()
    plain.apply(run_start("r", "tiny", "cifar10", 3))
    plain.apply(dict(event="epoch_end", time=T0, epoch=1, lr=0.1, val_accuracy=0.3))
    assert lr_of(plain) == "0.1"


def lr_of(state: RunState) -> str:
    return stats_text(state).plain.split(" · ")[0].removeprefix("lr ")


@pytest.mark.asyncio
async def test_history_at_80x24_keeps_every_column_and_footer_key_on_screen(tmp_path, folders):
    write_fixture_runs(folders[1], running_pid=os.getpid())
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("h")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == 5, what="the runs")
        rows = list(table.rows_shown.values())
        # A run of ours that is starting: no events yet, so its row shows the whole run id.
        starting = folders[1] / "imagenette-gdfrnet-dense-20261206-055212"
        table.show([RunRow(str(starting), RunRecord(starting), "crashed (exit -9)"), *rows])
        await pilot.pause()

        def widths() -> dict[str, int]:
            return {key.value: column.get_render_width(table) for key, column in table.columns.items()}

        assert sum(widths().values()) <= table.scrollable_content_region.width  # `test` on screen
        assert str(table.get_row_at(0)[2]).endswith("…")
        table.show(rows)  # once it has its label the column narrows again
        await pilot.pause()
        assert widths()["run"] == max(len(str(table.get_row_at(i)[2])) for i in range(5)) + 2
        for row in range(5):  # on each run (stop or resume + delete): every key left of ^p palette
            table.move_cursor(row=row)
            await pilot.pause()
            keys = list(app.screen.query(FooterKey))
            palette = next(key for key in keys if key.key == "ctrl+p")
            assert all(key.region.right <= palette.region.x for key in keys if key is not palette), \
                [(key.key, key.region) for key in keys]
            assert {key.key for key in keys} >= {"q", "l", "slash"}


def test_a_resumed_runs_total_time_counts_every_segment():
    """103.6 s, a stop, a resume, 124.5 s: 3m48s of training (not the last segment's 2m05s), pauses left out."""
    state = RunState()
    state.apply(run_start("r", "tiny", "cifar10", 3))
    state.apply(dict(event="run_end", time=T0 + 104, status="interrupted", epoch=1, seconds=103.6))
    state.apply(run_start("r", "tiny", "cifar10", 3, time=T0 + 600, initial_epoch=1))
    state.apply(dict(event="run_end", time=T0 + 725, status="completed", epoch=3, seconds=124.5))
    assert state.total_seconds == pytest.approx(228.1)
    assert state.total_time_text() == "3m 48s in 2 segments"
    assert dict(METRICS)["total time"](state) == "3m 48s in 2 segments"  # Compare's row
    # A segment killed without run_end counts its events' span; a one-segment run says no more.
    killed = RunState()
    killed.apply(run_start("r", "tiny", "cifar10", 3))
    killed.apply(dict(event="epoch_end", time=T0 + 50, epoch=1, val_accuracy=0.3))
    killed.apply(run_start("r", "tiny", "cifar10", 3, time=T0 + 300, initial_epoch=1))
    killed.apply(dict(event="run_end", time=T0 + 400, status="completed", epoch=3, seconds=100.0))
    assert killed.total_seconds == pytest.approx(150.0)
    single = RunState()
    single.apply(run_start("r", "tiny", "cifar10", 3))
    single.apply(dict(event="run_end", time=T0 + 95, status="completed", epoch=3, seconds=95.0))
    assert single.total_time_text() == "1m 35s"


@pytest.mark.asyncio
async def test_history_detail_labels_the_total_time(tmp_path, folders):
    runs = write_fixture_runs(folders[1])
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("h")
        table = app.screen.query_one(RunTable)
        await wait_for(pilot, lambda: table.row_count == len(runs), what="the runs")
        table.move_cursor(row=table.get_row_index(str(runs["completed"])))
        await pilot.pause()
        assert "  trained 1m 35s" in text_of(app.screen.query_one("#run-detail"))


@pytest.mark.asyncio
async def test_a_stopped_run_shows_no_step_of_the_epoch_it_dropped(tmp_path, folders):
    """Stopped at step 11/16 of epoch 2: `Epoch 1/3` beside `Step 16/16` (epoch 1 whole), not a stale `Step 11/16`."""
    events = [run_start("r", "tiny", "cifar10", 3), *epoch_events(3, 1),
              dict(event="progress", time=T0 + 45, epoch=2, step=11, steps=16, loss=2.0, accuracy=0.3),
              dict(event="run_end", time=T0 + 50, status="interrupted", epoch=1, seconds=50.0,
                   best_val_accuracy=0.25, test=None)]
    path = write_run(folders[1], "cifar10-tiny-20261128-071500", events)
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.push_screen(RunScreen(path.absolute()))
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        await pilot.pause(0.5)
        labels = [text_of(app.screen.query_one(f"#{name}-label")) for name in ("epoch", "step")]
        assert labels == ["Epoch 1/3", "Step 16/16"]


@pytest.mark.asyncio
async def test_the_path_notice_leaves_with_its_screen(tmp_path, folders):
    runs = write_fixture_runs(folders[1])
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.push_screen(RunScreen(runs["completed"].absolute()))
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        await pilot.press("p")
        await wait_for(pilot, lambda: len(app._notifications) == 1, what="the path notice")
        await pilot.press("escape")
        await pilot.pause()
        assert len(app._notifications) == 0  # not lingering ~10 s over the screen below


@pytest.mark.asyncio
async def test_compare_draws_each_run_with_its_own_glyph(tmp_path, folders):
    runs = write_fixture_runs(folders[1])
    app = app_on(tmp_path, folders)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.push_screen(CompareScreen([runs[name].absolute() for name in ("completed", "completed2", "interrupted")]))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        plots = list(app.screen.query(CurvesPlot))
        await wait_for(pilot, lambda: all(len(plot.curves) == 3 for plot in plots), what="the curves")
        await pilot.pause(0.3)
        for plot in plots:  # the legend: `⢕⢕ #1 tiny ...`, `•• #2 net5 ...`, `++ #3 net1 ...`
            legend = {n: re.search(rf"(\S+) #{n} ", text_of(plot)) for n in (1, 2, 3)}
            assert all(legend.values()), text_of(plot)
            assert len({found.group(1) for found in legend.values()}) == 3, text_of(plot)
