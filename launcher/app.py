"""The `gdfr-tui` application: `make_app()` and the thin click command around it."""

from __future__ import annotations

import functools
import os
import pathlib
import shlex
import signal
from typing import Callable, Sequence

import click
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.signal import Signal

from launcher.launch import (
    DEFAULT_TRAINER,
    Overrides,
    TrainProcess,
    default_backend,
    new_run_dir,
    resume_command,
    train_command,
)
from launcher.machine import Sampler
from launcher.model_info import InfoFunction, ModelInfo, gdfr_info
from launcher.recipes import default_recipes_dir
from launcher.owner import owner_alive, read_owner, signal_owner
from launcher.run_index import RunRecord
from launcher.runs import OUTPUT
from launcher.screens.confirm import Confirm
from launcher.screens.confirm_quit import ConfirmQuit
from launcher.screens.history import HistoryScreen
from launcher.screens.launch import LaunchScreen

PROCESS_POLL_S = 0.5


class GdfrApp(App[None]):
    """Launch, watch, stop, resume and compare `gdfr train` runs.

    Args:
        recipes_dir: the folder of recipes to browse.
        runs_dir: the folder of run directories (new runs go there too).
        trainer: the command that runs `gdfr` (`python -m keras_gdfr.cli`).
        model_info: (recipe, variant) -> `gdfr info --json` object; by default a
            `gdfr info` subprocess.
        backend: the backend the launch form starts with.
        sampler: makes the run screen's machine sampler (`launcher.machine.Sampler`);
            the snapshot tests pass one with fixed figures.
    """

    CSS_PATH = "app.tcss"
    TITLE = "gdfr-tui"
    BINDINGS = [
        Binding("l", "show_mode('launch')", "Launch", id="app.launch"),
        Binding("h", "show_mode('history')", "History", id="app.history"),
        Binding("q", "quit", "Quit", id="app.quit"),
        # Priority: focus moves before the next key is dispatched, so text typed right
        # after a burst of Tabs (queued while the app was busy) lands in the right field.
        Binding("tab", "app.focus_next", "Next field", show=False, priority=True, id="app.focus_next"),
        Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True,
                id="app.focus_previous"),
    ]

    def __init__(
        self,
        recipes_dir: pathlib.Path,
        runs_dir: pathlib.Path,
        trainer: Sequence[str] = DEFAULT_TRAINER,
        model_info: InfoFunction | None = None,
        backend: str | None = None,
        sampler: Callable[[], Sampler] = Sampler,
    ) -> None:
        super().__init__()
        self.sampler = sampler
        self.recipes_dir = pathlib.Path(recipes_dir)
        self.runs_dir = pathlib.Path(runs_dir)
        self.trainer = tuple(trainer)
        self.model_info: InfoFunction = model_info or functools.partial(gdfr_info, trainer=self.trainer)
        self.info_cache: dict[tuple[str, str], ModelInfo] = {}
        self.processes: dict[pathlib.Path, TrainProcess] = {}
        self.runs_changed: Signal[pathlib.Path] = Signal(self, "runs-changed")
        """Published with a run directory when a process of ours starts or ends."""
        self._exited: set[pathlib.Path] = set()
        self.foreign_stops: dict[pathlib.Path, int] = {}
        """Stop requests sent to runs trained by another process (another gdfr-tui, a shell)."""
        self.add_mode("launch", functools.partial(LaunchScreen, self.recipes_dir, backend or default_backend()))
        self.add_mode("history", functools.partial(HistoryScreen, self.runs_dir))

    def on_mount(self) -> None:
        self.switch_mode("launch")
        self.set_interval(PROCESS_POLL_S, self._watch_processes)

    # Processes -----------------------------------------------------------------

    def launch_run(
        self,
        recipe: pathlib.Path,
        variant: str,
        overrides: Overrides,
        dataset: str,
    ) -> pathlib.Path | None:
        """Starts `gdfr train` for a recipe; returns its run directory (None on failure)."""
        run_dir = pathlib.Path(overrides.run_dir) if overrides.run_dir else new_run_dir(self.runs_dir, dataset, variant)
        run_dir = run_dir.absolute()
        command = train_command(recipe, variant, overrides, run_dir, self.trainer)
        return self._start(command, run_dir, overrides.backend)

    def resume_run(self, run_dir: pathlib.Path, backend: str | None = None) -> pathlib.Path | None:
        """Starts `gdfr train --resume RUN_DIR` unless that run is already training here."""
        run_dir = pathlib.Path(run_dir).absolute()
        process = self.processes.get(run_dir)
        if process is not None and process.running:
            self.notify(f"{run_dir.name} is still running.", title="Resume", severity="warning")
            return None
        return self._start(resume_command(run_dir, self.trainer), run_dir, backend or default_backend())

    def _start(self, command: list[str], run_dir: pathlib.Path, backend: str) -> pathlib.Path | None:
        try:
            process = TrainProcess(command, run_dir, backend)
        except OSError as error:
            self.notify(f"could not start gdfr train: {error}", title="Launch", severity="error")
            return None
        self.processes[run_dir] = process
        self._exited.discard(run_dir)
        self.notify(f"{run_dir.name} started ({backend}).", title="Launch")
        self.runs_changed.publish(run_dir)
        return run_dir

    def ask_stop(self, run_dir: pathlib.Path, then: Callable[[], None] | None = None) -> None:
        """Asks whether to stop a run; on yes, `stop_run` (then `then`)."""
        run_dir = pathlib.Path(run_dir)

        def answer(yes: bool | None) -> None:
            if yes:
                self.stop_run(run_dir)
                if then is not None:
                    then()

        self.push_screen(Confirm(
            f"Stop {run_dir.name}?",
            "The first stop sends SIGINT: the trainer saves a checkpoint and ends as 'interrupted' "
            "(ctrl+r resumes it). Asked again, SIGTERM.",
            yes="Stop",
        ), answer)

    def stop_run(self, run_dir: pathlib.Path) -> None:
        """Sends SIGINT (SIGTERM when asked again) to the trainer of a run.

        The trainer may be ours or any other process on this host: its pid comes
        from the run's `run.lock` (or `run_start`), checked to be alive first.
        """
        run_dir = pathlib.Path(run_dir).absolute()
        process = self.processes.get(run_dir)
        if process is not None and process.running:
            sent = process.stop()
            if sent:
                self.notify(f"{sent} sent to {run_dir.name} (pid {process.pid}).", title="Stop")
            return
        record = RunRecord(run_dir)
        try:
            record.poll()
        except OSError:
            pass
        owner = read_owner(run_dir, record.state)
        if not owner_alive(run_dir, owner):
            where = "" if owner is None or owner.local else f" (it runs on {owner.host})"
            self.notify(f"{run_dir.name} has no live trainer on this host{where}.", title="Stop", severity="warning")
            return
        count = self.foreign_stops.get(run_dir, 0) + 1
        sent = signal_owner(owner, signal.SIGINT if count == 1 else signal.SIGTERM)
        if sent:
            self.foreign_stops[run_dir] = count
            self.notify(f"{sent} sent to {run_dir.name} (pid {owner.pid}).", title="Stop")
        else:
            self.notify(f"could not signal pid {owner.pid} of {run_dir.name}.", title="Stop", severity="error")

    def action_show_mode(self, mode: str) -> None:
        """Shows a mode's screen; pressed again there (over an opened run), back to its base screen."""
        if self.current_mode != mode:
            self.switch_mode(mode)
            return
        while len(self.screen_stack) > 1 and not isinstance(self.screen, ModalScreen):
            self.pop_screen()

    @property
    def running(self) -> list[TrainProcess]:
        """The processes of ours still alive."""
        return [process for process in self.processes.values() if process.running]

    def log_path(self, run_dir: pathlib.Path) -> pathlib.Path:
        """Where a run's output log is: beside the run directory while ours is starting."""
        process = self.processes.get(pathlib.Path(run_dir))
        return process.log_path if process is not None else pathlib.Path(run_dir) / OUTPUT

    def _watch_processes(self) -> None:
        for run_dir, process in self.processes.items():
            process.settle_log()
            code = process.returncode
            if code is None or run_dir in self._exited:
                continue
            self._exited.add(run_dir)
            severity = "information" if code == 0 or process.stop_requests else "error"
            self.notify(f"{run_dir.name} ended (exit {code}).", title="Run", severity=severity)
            self.runs_changed.publish(run_dir)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("switch_mode", "show_mode", "quit") and isinstance(self.screen, ModalScreen):
            return False  # a question (quit, delete, launch) is answered first
        if action == "show_mode" and parameters == (self.current_mode,) and len(self.screen_stack) == 1:
            return False  # on that very screen: no key to show (room in an 80-column footer)
        return True

    # Quitting --------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Quits; with runs in flight, first asks whether to stop them."""
        running = self.running
        if not running:
            self.exit()
            return

        def answer(stop: bool | None) -> None:
            if stop is None:
                return
            if stop:
                for process in self.running:
                    process.stop()
            self.exit()

        self.push_screen(ConfirmQuit(len(running)), answer)


def make_app(
    recipes_dir: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike | None = None,
    **options,
) -> GdfrApp:
    """The launcher app, as `gdfr-tui` and the tests build it.

    Args:
        recipes_dir: the recipes folder; default `./recipes` if present, else the
            repository's `recipes` folder beside the installed package.
        runs_dir: the runs folder; default `./runs`.
        **options: `trainer`, `model_info`, `backend`, `sampler` (see `GdfrApp`).
    """
    recipes = pathlib.Path(recipes_dir) if recipes_dir else default_recipes_dir()
    runs = pathlib.Path(runs_dir) if runs_dir else pathlib.Path("runs")
    return GdfrApp(recipes, runs, **options)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--recipes",
    "recipes_dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    help="Folder of recipe TOML files. [default: ./recipes, else the repository's]",
)
@click.option(
    "--runs",
    "runs_dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=pathlib.Path("runs"),
    show_default=True,
    help="Folder of run directories; new runs are created there.",
)
@click.option(
    "--trainer",
    default=None,
    hidden=True,
    help="The command that runs gdfr (default: this Python's -m keras_gdfr.cli); for development.",
)
def main(recipes_dir: pathlib.Path | None, runs_dir: pathlib.Path, trainer: str | None) -> None:
    """Launch, watch and compare GDFRNet training runs in the terminal."""
    options = {"trainer": shlex.split(trainer)} if trainer else {}
    make_app(recipes_dir, runs_dir, **options).run()


if __name__ == "__main__":
    main()
