"""Snapshot tests of the launcher's main screens, on fixture data (pytest-textual-snapshot).

Each scenario builds an app on fixture recipes and run directories (no clocks,
no paths on screen) and drives it to one screen. The same scenarios write the
documentation's screenshots:

    python -m tests.test_tui_snapshots docs/screenshots

Update the stored snapshots after a deliberate change with
`pytest tests/test_tui_snapshots.py --snapshot-update`, and look at the report.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
import tempfile
from typing import Awaitable, Callable

import pytest

from launcher.app import GdfrApp, make_app
from launcher.screens.compare import CompareScreen
from launcher.screens.confirm_quit import ConfirmQuit
from launcher.screens.run import RunScreen
from launcher.widgets.recipe_details import RecipeDetails
from launcher.widgets.run_table import RunTable
from launcher.widgets.variant_list import VariantList
from launcher.machine import GpuSample, MachineSample
from tests.test_tui_fixtures import T0, fake_info, write_fixture_runs, write_recipes

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
Scenario = Callable[[GdfrApp, dict], Callable[..., Awaitable[None]]]


class FixedSampler:
    """Machine figures that do not change between runs (the snapshots must not)."""

    def sample(self, pid):
        gpus = (GpuSample(0, "NVIDIA H200", 87.0, 61 * 2**30, 141 * 2**30),)
        return MachineSample(process_cpu=183.0, process_rss=3 * 2**30 + 2**29, process_threads=41, host_cpu=95.0,
                             host_cores=16, host_memory_used=20 * 2**30, host_memory_total=125 * 2**30, gpus=gpus,
                             time=T0 + 14530)


def build(folder: pathlib.Path) -> tuple[GdfrApp, dict]:
    """An app on fixture recipes and runs under `folder`, with a fixed backend, model info and machine.

    The running run's trainer is pid 1 (always alive, the same on every machine).
    """
    recipes = write_recipes(folder / "recipes")
    runs = write_fixture_runs(folder / "runs", running_pid=1)
    app = make_app(recipes, folder / "runs", model_info=fake_info(), backend="torch", sampler=FixedSampler)
    return app, runs


async def info_settled(pilot) -> None:
    """Waits until the launch screen shows the (fake) model info, not "…"."""
    details = pilot.app.screen.query_one(RecipeDetails)
    for _ in range(100):
        await pilot.pause(0.1)
        if details.info.data is not None and not details.info.pending:
            return
    raise AssertionError("the model info never arrived")


def launch(app, runs):
    async def run_before(pilot):
        await info_settled(pilot)

    return run_before


def launch_tiny(app, runs):
    async def run_before(pilot):
        await pilot.press("down")  # second recipe
        pilot.app.screen.query_one(VariantList).select_variant("tiny")
        form = pilot.app.screen.query_one("LaunchForm")
        form.set_value("epochs", "3")
        form.set_value("limit-train", "2000")
        form.set_value("limit-test", "500")
        await info_settled(pilot)

    return run_before


def run_screen(key: str, tab: str = "curves"):
    def scenario(app, runs):
        async def run_before(pilot):
            pilot.app.push_screen(RunScreen(runs[key].absolute()))
            await pilot.pause(0.3)
            if tab != "curves":
                await pilot.press(tab[0])
            await pilot.pause(0.3)

        return run_before

    return scenario


def history(app, runs):
    async def run_before(pilot):
        await pilot.press("h")
        table = pilot.app.screen.query_one(RunTable)
        for _ in range(100):
            await pilot.pause(0.1)
            if table.row_count == len(runs):
                return
        raise AssertionError("the runs never showed")

    return run_before


def compare(app, runs):
    async def run_before(pilot):
        await pilot.press("h")
        await pilot.pause(0.3)
        pilot.app.push_screen(CompareScreen([runs["completed"].absolute(), runs["completed2"].absolute(),
                                             runs["interrupted"].absolute()]))
        await pilot.pause(0.5)

    return run_before


def confirm_quit(app, runs):
    async def run_before(pilot):
        await info_settled(pilot)
        pilot.app.push_screen(ConfirmQuit(2))
        await pilot.pause(0.3)

    return run_before


SCENARIOS: dict[str, Scenario] = {
    "launch": launch,
    "launch-tiny": launch_tiny,
    "run-completed": run_screen("completed"),
    "run-evaluation": run_screen("completed", "evaluation"),
    "run-running": run_screen("running"),
    "run-machine": run_screen("running", "machine"),
    "run-failed": run_screen("failed"),
    "history": history,
    "compare": compare,
    "confirm-quit": confirm_quit,
}


WIDE = ("launch", "run-completed", "run-evaluation", "run-running", "run-machine", "history", "compare")
"""The scenarios also snapshotted at 160x48; every one is at 80x24."""


@pytest.mark.parametrize(
    "name, size", [(name, size) for name in SCENARIOS for size in SIZES if size == "80x24" or name in WIDE]
)
def test_screen_snapshot(name, size, snap_compare, tmp_path):
    app, runs = build(tmp_path)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=SCENARIOS[name](app, runs))


async def save_screenshots(folder: pathlib.Path) -> list[pathlib.Path]:
    """Every scenario at 80x24 and 160x48 as `<folder>/<name>-<size>.svg`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, scenario in SCENARIOS.items():
        for size_name, size in SIZES.items():
            with tempfile.TemporaryDirectory() as scratch:
                app, runs = build(pathlib.Path(scratch))
                async with app.run_test(size=size) as pilot:
                    await pilot.pause()
                    await scenario(app, runs)(pilot)
                    path = folder / f"{name}-{size_name}.svg"
                    path.write_text(app.export_screenshot(title=f"gdfr-tui {name}"))
                    written.append(path)
    return written


if __name__ == "__main__":
    for path in asyncio.run(save_screenshots(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))):
        print(path)
