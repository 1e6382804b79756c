"""`gdfr sweep`: train several variants of one recipe, one after another, resumably.

Each variant runs as its own `gdfr train` process (`python -m keras_gdfr.cli
train RECIPE --variant V --run-dir RUNS/<recipe>-<V> ...`), so a crash or an
out-of-memory in one cannot take the others down, and every run directory is an
ordinary one (docs/run-directory.md) for `gdfr report RUNS`.

Resuming: run the same sweep again. A variant whose run directory's latest
`run_end` says `completed` is skipped; one whose run directory exists but has
not completed is continued with `gdfr train --resume RUN_DIR` (with the recipe
it was started with); the rest start fresh.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from keras_gdfr.report.runs import RunDirError, is_run_dir, load_run

# Exit statuses of a child stopped by Ctrl-C: 130 by convention, -2 when killed by SIGINT.
INTERRUPTED_CODES = (130, -2)


def default_train_command() -> list[str]:
    """The `gdfr train` command, run with this interpreter (no installed script needed)."""
    return [sys.executable, "-m", "keras_gdfr.cli", "train"]


def recipe_stem(recipe: str) -> str:
    """'cifar10' for 'recipes/cifar10.toml' or for the recipe name 'cifar10'."""
    return pathlib.Path(recipe).stem


def run_dir_for(runs_dir, recipe: str, variant: str) -> pathlib.Path:
    """The run directory of one variant of a sweep: `<runs>/<recipe>-<variant>`."""
    return pathlib.Path(runs_dir) / f"{recipe_stem(recipe)}-{variant}"


def run_state(run_dir) -> str:
    """'completed' (latest run_end says so), 'incomplete' (a run directory that has
    not completed), or 'absent' (no run directory yet)."""
    run_dir = pathlib.Path(run_dir)
    if not is_run_dir(run_dir):
        return "absent"
    try:
        run = load_run(run_dir)
    except RunDirError:
        return "incomplete"
    return "completed" if run.completed else "incomplete"


@dataclasses.dataclass
class SweepStep:
    """One variant of a sweep.

    Attributes:
        variant: the variant name.
        run_dir: its run directory.
        action: 'skip' (already completed), 'resume' or 'train'.
        returncode: the train process's exit status (None when skipped or not run).
    """

    variant: str
    run_dir: pathlib.Path
    action: str
    returncode: int | None = None

    @property
    def failed(self) -> bool:
        return self.returncode not in (None, 0)


def plan_sweep(recipe: str, variants: Sequence[str], runs_dir) -> list[SweepStep]:
    """What a sweep would do for each variant, from the run directories on disk."""
    actions = {"completed": "skip", "incomplete": "resume", "absent": "train"}
    return [
        SweepStep(v, run_dir_for(runs_dir, recipe, v), actions[run_state(run_dir_for(runs_dir, recipe, v))])
        for v in dict.fromkeys(variants)
    ]


def train_arguments(recipe: str, step: SweepStep, train_args: Sequence[str]) -> list[str]:
    """The `gdfr train` arguments of one step (after the command itself).

    A resumed run continues with its own recipe (`gdfr train --resume RUN_DIR` takes
    no other options), so the sweep's train options apply to fresh runs only.
    """
    if step.action == "resume":
        return ["--resume", str(step.run_dir)]
    return [recipe, "--variant", step.variant, "--run-dir", str(step.run_dir), *train_args]


class SweepTerminated(Exception):
    """SIGTERM reached the sweep: it was passed on to the train child, which has ended."""

    def __init__(self, pid: int, returncode: int):
        super().__init__(f"gdfr train (pid {pid}) stopped with exit status {returncode}")
        self.pid, self.returncode = pid, returncode


def _run_child(command: list[str]) -> int:
    """Run one train process to its end; on Ctrl-C let it write its checkpoint and
    run_end first (it received the same SIGINT), then re-raise. SIGTERM to the sweep
    is passed on to the child (which stops the same way) and raises SweepTerminated
    once it has ended: a child left running would write its run unsupervised."""
    process = subprocess.Popen(command, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    terminated = []

    def forward(signum, frame):
        terminated.append(signum)
        process.send_signal(signum)

    main = threading.current_thread() is threading.main_thread()  # signal handlers: main thread only
    previous = signal.signal(signal.SIGTERM, forward) if main else None
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        process.wait()
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    if terminated:
        raise SweepTerminated(process.pid, returncode)
    return returncode


def run_sweep(
    recipe: str,
    variants: Sequence[str],
    runs_dir="runs",
    train_args: Sequence[str] = (),
    command: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[SweepStep]:
    """Train each variant in turn into `<runs_dir>/<recipe>-<variant>`.

    Args:
        recipe: the recipe file or name, passed to `gdfr train` as given.
        variants: variant names, in order (duplicates dropped).
        runs_dir: the folder of the sweep's run directories.
        train_args: further `gdfr train` options (`--epochs 3`, `--set k=v`, ...).
        command: the train command (default `python -m keras_gdfr.cli train`).
        echo: where progress lines go.

    Returns:
        The steps with their return codes. A failed variant does not stop the
        sweep; an interrupted one (exit 130 / SIGINT) does, leaving the remaining
        variants for the next, resumed, sweep.
    """
    command = list(command or default_train_command())
    pathlib.Path(runs_dir).mkdir(parents=True, exist_ok=True)
    steps = plan_sweep(recipe, variants, runs_dir)
    for index, step in enumerate(steps, start=1):
        header = f"[sweep {index}/{len(steps)}] {step.variant}"
        if step.action == "skip":
            echo(f"{header}: completed in {step.run_dir}, skipped")
            continue
        echo(f"{header}: {'resuming' if step.action == 'resume' else 'training'} into {step.run_dir}")
        step.returncode = _run_child(command + train_arguments(recipe, step, train_args))
        if step.returncode in INTERRUPTED_CODES:
            echo(f"{header}: interrupted; run the same sweep again to resume")
            break
        if step.failed:
            echo(f"{header}: failed with exit status {step.returncode}; going on with the next variant")
    return steps


def summary(steps: list[SweepStep]) -> str:
    """One line per variant: what happened."""
    lines = []
    for step in steps:
        if step.action == "skip":
            outcome = "already completed"
        elif step.returncode is None:
            outcome = "not run (sweep stopped)"
        elif step.returncode == 0:
            outcome = "resumed and finished" if step.action == "resume" else "trained"
        else:
            outcome = f"exit status {step.returncode}"
        lines.append(f"{step.variant:16s} {outcome:28s} {step.run_dir}")
    return "\n".join(lines)
