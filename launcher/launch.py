"""Starting and stopping `gdfr train` processes (no Textual, no Keras).

The launcher never trains in its own process: it builds a `gdfr train` command
line, starts it with `KERAS_BACKEND` set and its output in `<run_dir>/output.log`,
and from then on reads the run directory like any other reader.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Sequence

from launcher.runs import FINAL_STATUSES, OUTPUT, RunState

BACKENDS = ("torch", "tensorflow", "jax")

DEFAULT_TRAINER: tuple[str, ...] = (sys.executable, "-m", "keras_gdfr.cli")
"""How to run `gdfr`: the current interpreter, so no console script is needed on PATH."""


def default_backend() -> str:
    """`KERAS_BACKEND` when it names a known backend, else Keras's default."""
    backend = os.environ.get("KERAS_BACKEND", "")
    return backend if backend in BACKENDS else "tensorflow"


@dataclasses.dataclass(frozen=True)
class Overrides:
    """What the launch form changes from the recipe. None or empty: the recipe's value."""

    epochs: int | None = None
    batch_size: int | None = None
    backend: str = "tensorflow"
    data: str | None = None
    run_dir: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    sets: tuple[str, ...] = ()


def train_command(
    recipe: str | os.PathLike,
    variant: str | None,
    overrides: Overrides,
    run_dir: str | os.PathLike | None,
    trainer: Sequence[str] = DEFAULT_TRAINER,
) -> list[str]:
    """The `gdfr train` command line for a recipe, a variant and the form's overrides.

    `run_dir` None leaves `--run-dir` out (the trainer then picks the directory).
    """
    command = [*trainer, "train", str(recipe)]
    if variant:
        command += ["--variant", variant]
    for item in overrides.sets:
        command += ["--set", item]
    for flag, value in (
        ("--epochs", overrides.epochs),
        ("--batch-size", overrides.batch_size),
        ("--data", overrides.data),
        ("--limit-train", overrides.limit_train),
        ("--limit-test", overrides.limit_test),
    ):
        if value is not None and value != "":
            command += [flag, str(value)]
    if run_dir is not None:
        command += ["--run-dir", str(run_dir)]
    return command


def resume_command(run_dir: str | os.PathLike, trainer: Sequence[str] = DEFAULT_TRAINER) -> list[str]:
    """The `gdfr train --resume RUN_DIR` command line."""
    return [*trainer, "train", "--resume", str(run_dir)]


def new_run_dir(
    runs_dir: str | os.PathLike,
    dataset: str,
    variant: str,
    now: datetime.datetime | None = None,
) -> pathlib.Path:
    """A fresh `<runs>/<dataset>-<variant>-<YYYYmmdd-HHMMSS>` path (suffixed if taken)."""
    now = now or datetime.datetime.now()
    stem = f"{dataset or 'run'}-{variant or 'default'}-{now:%Y%m%d-%H%M%S}"
    path = pathlib.Path(runs_dir) / stem
    suffix = 1
    while path.exists():
        suffix += 1
        path = pathlib.Path(runs_dir) / f"{stem}-{suffix}"
    return path


def pending_log_path(run_dir: pathlib.Path) -> pathlib.Path:
    """Where a new run's output goes until the trainer has created its run directory.

    `gdfr train` refuses a run directory that exists and is not empty, so the
    launcher cannot create `<run_dir>/output.log` first: the log starts in
    `<parent>/.gdfr-tui/` (which readers ignore) and `TrainProcess.settle_log`
    moves it into the run directory once that exists.
    """
    return run_dir.parent / ".gdfr-tui" / f"{run_dir.name}.{OUTPUT}"


class TrainProcess:
    """One `gdfr train` subprocess started by the launcher.

    The process runs in its own session (so a terminal's Ctrl+C or hang-up does
    not reach it), with stdin closed and stdout and stderr appended to
    `log_path`: `<run_dir>/output.log` when the run directory exists (a resume),
    else `pending_log_path(run_dir)` until `settle_log()` moves it there.

    Args:
        command: the full command line.
        run_dir: the run directory the command writes.
        backend: the `KERAS_BACKEND` of the process.
        env: extra environment variables.
    """

    def __init__(
        self,
        command: Sequence[str],
        run_dir: str | os.PathLike,
        backend: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.run_dir = pathlib.Path(run_dir)
        self.backend = backend
        self.stop_requests = 0
        self.started = time.time()
        self.log_path = self.run_dir / OUTPUT if self.run_dir.is_dir() else pending_log_path(self.run_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ, **(env or {}))
        environment["KERAS_BACKEND"] = backend
        environment.setdefault("PYTHONUNBUFFERED", "1")
        with open(self.log_path, "ab") as log:
            log.write(("$ " + " ".join(self.command) + "\n").encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )

    def settle_log(self) -> None:
        """Moves the output log into the run directory once the trainer has made it.

        The process keeps writing to the same open file after the rename.
        """
        target = self.run_dir / OUTPUT
        if self.log_path == target or not self.run_dir.is_dir() or target.exists():
            return
        try:
            os.replace(self.log_path, target)
        except OSError:
            return
        self.log_path = target
        try:
            pending_log_path(self.run_dir).parent.rmdir()  # only when empty
        except OSError:
            pass

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (reaping it), else None."""
        return self.popen.poll()

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.returncode is None

    def stop(self) -> str:
        """Asks the trainer to stop: SIGINT first (it checkpoints), SIGTERM if asked again.

        Returns:
            The name of the signal sent, or "" when the process had already ended.
        """
        if not self.running:
            return ""
        self.stop_requests += 1
        sig = signal.SIGINT if self.stop_requests == 1 else signal.SIGTERM
        try:
            self.popen.send_signal(sig)
        except ProcessLookupError:
            return ""
        return sig.name


def run_status(state: RunState, process: TrainProcess | None) -> str:
    """The status to show for a run, knowing the process the launcher started for it.

    A run with a process of ours: `starting` until its `run_start`, `stopping`
    after a stop request, the `run_end` status once written, and
    `crashed (exit N)` when the process ended without one. Other runs:
    `RunState.effective_status()`.
    """
    if process is None:
        return state.effective_status()
    ended = state.status in FINAL_STATUSES
    current = ended and float((state.end or {}).get("time") or 0) >= process.started
    if process.returncode is None:
        if current:
            return state.status
        if process.stop_requests:
            return "stopping"
        return "running" if state.status == "running" else "starting"
    if current:
        return state.status
    return f"crashed (exit {process.returncode})"
