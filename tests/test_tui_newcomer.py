"""gdfr-tui as a newcomer met it (issue 22), each defect driven through the pilot.

Typed text that reached the run keys, the learning rate shown one epoch late,
History's columns at 80x24, a resumed run's total time, the Run screen and the
Output tab after a stop, the path toast, Compare's legend glyphs.
"""

from __future__ import annotations

import os

import pytest

from launcher.screens.confirm import Confirm
from launcher.screens.history import HistoryScreen
from launcher.widgets.run_table import RunTable
from tests.test_tui import wait_for
from tests.test_tui_fixtures import write_fixture_runs
from tests.test_tui_monitor import SMALL, app_on

pytestmark = pytest.mark.asyncio


@pytest.fixture
def folders(tmp_path):
    from tests.test_tui_fixtures import write_recipes

    return write_recipes(tmp_path / "recipes"), tmp_path / "runs"


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
