"""`gdfr sweep`: a grid of `gdfr train` runs (recipes x variants x seeds), resumable.

Each cell of the grid runs as its own `gdfr train` process (`python -m keras_gdfr.cli
train RECIPE --variant V --run-dir RUNS/<recipe>-<V>[-s<seed>] ...`), so a crash or an
out-of-memory in one cannot take the others down, and every run directory is an
ordinary one (docs/run-directory.md) for `gdfr report RUNS`.

Engines: this module runs the cells on this machine, `parallel` at a time, each with
its own slot's environment (`local_slots`: one GPU each through CUDA_VISIBLE_DEVICES,
or a share of the CPU cores); `keras_gdfr.report.sweep_ray` runs them as Ray tasks.
Both use `run_cell` / `ChildProcesses`, the one place where train processes are
started and stopped, and the same retry rule (`should_retry`).

Resuming: run the same sweep again. A cell whose run directory's latest `run_end`
says `completed` is skipped; one whose run directory exists but has not completed is
continued with `gdfr train --resume RUN_DIR` (with the recipe it was started with);
the rest start fresh. A cell whose process fails (killed, crashed, a lost worker) is
retried the same way, up to `retries` times. docs/sweeps.md.

Why one file of ~490 lines: the cells and their states, the one place children start and stop
(`ChildProcesses`, `run_cell`) and the local engine are read together; the printed plan
(`sweep_plan.py`) and the Ray engine (`sweep_ray.py`) live beside it; sections are
marked with rule lines.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from keras_gdfr.report.runs import RunDirError, is_run_dir, load_run
from keras_gdfr.training.events import OUTPUT_LOG, SWEEP_MANIFEST

# Exit statuses of a child stopped by Ctrl-C: 130 by convention, -2 when killed by SIGINT.
INTERRUPTED_CODES = (130, -2)
# `gdfr train`'s exit status for a bad recipe or flag: retrying cannot help.
USAGE_ERROR = 2
DEFAULT_RETRIES = 2
POLL_S = 0.2
# Thread-count variables of the backends, set per child when the CPU cores are divided.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def default_train_command() -> list[str]:
    """The `gdfr train` command, run with this interpreter (no installed script needed)."""
    return [sys.executable, "-m", "keras_gdfr.cli", "train"]


def recipe_stem(recipe: str) -> str:
    """'cifar10' for 'recipes/cifar10.toml' or for the recipe name 'cifar10'."""
    return pathlib.Path(recipe).stem


def run_dir_for(runs_dir, recipe: str, variant: str, seed: int | None = None) -> pathlib.Path:
    """The run directory of one cell: `<runs>/<recipe>-<variant>`, with `-s<seed>` when seeded."""
    suffix = "" if seed is None else f"-s{seed}"
    return pathlib.Path(runs_dir) / f"{recipe_stem(recipe)}-{variant}{suffix}"


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


_ACTIONS = {"completed": "skip", "incomplete": "resume", "absent": "train"}


@dataclasses.dataclass
class SweepStep:
    """One cell of a sweep.

    Attributes:
        variant: the variant name.
        run_dir: its run directory.
        action: 'skip' (already completed), 'resume' or 'train' (what its next attempt does).
        returncode: the last train process's exit status (None when skipped or not run).
        recipe: the recipe file or name.
        seed: the cell's train.seed (None: the recipe's own).
        attempts: train processes started for it.
        error: the last error of a failed cell (its events' error, else its log's last line).
    """

    variant: str
    run_dir: pathlib.Path
    action: str
    returncode: int | None = None
    recipe: str = ""
    seed: int | None = None
    attempts: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.returncode not in (None, 0)

    @property
    def interrupted(self) -> bool:
        return self.returncode in INTERRUPTED_CODES

    @property
    def name(self) -> str:
        """'cifar10 net2 s1'."""
        seed = "" if self.seed is None else f" s{self.seed}"
        return f"{recipe_stem(self.recipe)} {self.variant}{seed}"

    def replan(self) -> None:
        """The next attempt's action, from what the run directory holds now."""
        self.action = _ACTIONS[run_state(self.run_dir)]


def plan_cells(recipes: Sequence[str], variants: Sequence[str], seeds: Sequence[int] | None, runs_dir) -> list[SweepStep]:
    """Every cell of the grid (recipe-major, then variant, then seed) with what it would do now."""
    steps = []
    for recipe in dict.fromkeys(recipes):
        for variant in dict.fromkeys(variants):
            for seed in (list(dict.fromkeys(seeds)) if seeds is not None else [None]):
                step = SweepStep(variant, run_dir_for(runs_dir, recipe, variant, seed), "", recipe=recipe, seed=seed)
                step.replan()
                steps.append(step)
    return steps


def plan_sweep(recipe: str, variants: Sequence[str], runs_dir) -> list[SweepStep]:
    """What a one-recipe sweep would do for each variant, from the run directories on disk."""
    return plan_cells([recipe], variants, None, runs_dir)


def train_arguments(recipe: str, step: SweepStep, train_args: Sequence[str]) -> list[str]:
    """The `gdfr train` arguments of one step (after the command itself).

    A resumed run continues with its own recipe (`gdfr train --resume RUN_DIR` takes
    no other options), so the sweep's train options apply to fresh runs only. The
    cell's seed comes last, so it wins over a `--set train.seed=` of the options.
    """
    if step.action == "resume":
        return ["--resume", str(step.run_dir)]
    seed = [] if step.seed is None else ["--set", f"train.seed={step.seed}"]
    return [recipe, "--variant", step.variant, "--run-dir", str(step.run_dir), *train_args, *seed]


def should_retry(step: SweepStep, retries: int) -> bool:
    """Whether a cell whose process just ended gets another attempt (with --resume where it saved anything).

    Not after success, an interruption (Ctrl-C: the user's), a bad recipe or flag (exit 2),
    or once `retries` retries are spent.
    """
    if step.returncode in (0, USAGE_ERROR, *INTERRUPTED_CODES):
        return False
    return step.attempts <= retries


def last_error(step: SweepStep) -> str:
    """Why a cell failed: the signal that killed it, else its latest `error` event, else the last line of
    its output.log, else its exit status."""
    if step.returncode is not None and step.returncode < 0:
        try:
            return f"killed by {signal.Signals(-step.returncode).name}"
        except ValueError:
            return f"killed by signal {-step.returncode}"
    try:
        events = load_run(step.run_dir).events
    except RunDirError:
        events = []
    errors = [e.get("message") for e in events if e.get("event") == "error" and e.get("message")]
    if errors:
        return str(errors[-1])
    try:
        lines = [line for line in (step.run_dir / OUTPUT_LOG).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    return lines[-1].strip() if lines else f"exit status {step.returncode}"


# ---------------------------------------------------------------------------
# Children: the one place where train processes are started and stopped.


class ChildProcesses:
    """The sweep's live train processes.

    `start` launches one (its own environment on top of this one; its output to a log
    file, or to this terminal), `wait_any` returns those that ended, and `wait_all`
    lets every child finish after a Ctrl-C (the terminal's SIGINT reached them too, so
    each writes its checkpoint and run_end first).
    """

    def __init__(self) -> None:
        self.running: dict[subprocess.Popen, object] = {}

    def start(self, command: Sequence[str], tag, env: dict | None = None, log: pathlib.Path | None = None) -> subprocess.Popen:
        """Start `command` for `tag` (what `wait_any` gives back with its exit status)."""
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        output = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            output = open(log, "ab")
        try:
            process = subprocess.Popen(list(command), env=environment, stdout=output,
                                       stderr=subprocess.STDOUT if output else None, stdin=subprocess.DEVNULL)
        finally:
            if output is not None:
                output.close()  # the child holds its own descriptor
        self.running[process] = tag
        return process

    def wait_any(self) -> list[tuple[object, int]]:
        """Block until at least one child has ended; (tag, exit status) of each that has."""
        while self.running:
            ended = [(process, process.poll()) for process in self.running]
            ended = [(process, code) for process, code in ended if code is not None]
            if ended:
                return [(self.running.pop(process), code) for process, code in ended]
            time.sleep(POLL_S)
        return []

    def wait_all(self) -> None:
        """Wait for every child to end (after a Ctrl-C they are writing their run_end)."""
        for process in list(self.running):
            process.wait()
        self.running.clear()

    @contextlib.contextmanager
    def stopped_by_sigterm(self):
        """SIGTERM to the sweep is passed on to every child; once they have ended (each writes
        its checkpoint and run_end, as on Ctrl-C), SweepTerminated. A child left running would
        write its run unsupervised, re-parented to init. Signal handlers: main thread only."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def forward(signum, frame):
            raise _SigTerm

        previous = signal.signal(signal.SIGTERM, forward)
        try:
            yield
        except _SigTerm:
            stopped = []
            for process in list(self.running):
                process.send_signal(signal.SIGTERM)
            for process in list(self.running):
                stopped.append((process.pid, process.wait()))
            self.running.clear()
            raise SweepTerminated(stopped) from None
        finally:
            signal.signal(signal.SIGTERM, previous)


class _SigTerm(BaseException):
    """Raised by the sweep's SIGTERM handler (BaseException: no `except Exception` swallows it)."""


class SweepTerminated(Exception):
    """SIGTERM reached the sweep: it was passed on to the train children, which have ended."""

    def __init__(self, stopped: list[tuple[int, int]]):
        super().__init__(", ".join(f"gdfr train (pid {pid}) stopped with exit status {code}"
                                   for pid, code in stopped) or "no gdfr train was running")
        self.stopped = stopped


def run_cell(step: SweepStep, train_args: Sequence[str], command: Sequence[str], retries: int,
             env: dict | None = None, log: bool = True) -> SweepStep:
    """Run one cell to its end in this process, retrying as `should_retry` says (the Ray engine's task body)."""
    children = ChildProcesses()
    while True:
        step.replan()
        if step.action == "skip":
            return step
        step.attempts += 1
        try:
            with children.stopped_by_sigterm():
                children.start(list(command) + train_arguments(step.recipe, step, train_args), step,
                               env, step.run_dir / OUTPUT_LOG if log else None)
                [(_, step.returncode)] = children.wait_any()
        except KeyboardInterrupt:
            children.wait_all()
            raise
        if step.failed:
            step.error = last_error(step)
        if not should_retry(step, retries):
            return step


# ---------------------------------------------------------------------------
# The local engine.


def visible_gpus() -> list[str]:
    """The GPUs this machine shows: CUDA_VISIBLE_DEVICES's entries where set, else `nvidia-smi -L`'s."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_slots(parallel, gpus: Sequence[str] | None = None, cores: int | None = None) -> list[dict]:
    """One environment per process run at once: its GPU, or its share of the CPU cores.

    Args:
        parallel: N, or "auto" (one per visible GPU; one without GPUs).
        gpus: the visible GPUs (default: `visible_gpus()`).
        cores: the CPU cores (default: this process's).

    With GPUs, slot i gets CUDA_VISIBLE_DEVICES=<GPU i> (round robin when N exceeds
    them); on CPU each slot gets cores // N threads (at least 1).
    """
    gpus = visible_gpus() if gpus is None else list(gpus)
    count = (len(gpus) or 1) if parallel == "auto" else int(parallel)
    if count < 1:
        raise ValueError(f"--parallel {parallel}: needs 1 or more processes, or auto")
    if gpus:
        return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(count)]
    threads = str(max(1, (cores or cpu_cores()) // count))
    return [dict.fromkeys(THREAD_VARIABLES, threads) for _ in range(count)]


def describe_slot(env: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.items() if k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"))


def run_steps(
    steps: list[SweepStep],
    train_args: Sequence[str] = (),
    *,
    parallel=1,
    retries: int = DEFAULT_RETRIES,
    command: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
    slots: list[dict] | None = None,
) -> list[SweepStep]:
    """Run the cells on this machine, up to `parallel` processes at once.

    With one process its output goes to this terminal; with more, each child's
    goes to its run directory's output.log. A failed cell is retried (`should_retry`)
    and does not stop the others; an interrupted one (exit 130 / SIGINT) stops new
    starts, leaving the remaining cells for the next, resumed, sweep.
    """
    command = list(command or default_train_command())
    slots = slots if slots is not None else local_slots(parallel)
    to_log = len(slots) > 1
    todo = [s for s in steps if s.action != "skip"]
    number = {id(s): i for i, s in enumerate(steps, start=1)}
    header = lambda s: f"[sweep {number[id(s)]}/{len(steps)}] {s.name}"  # noqa: E731
    for step in steps:
        if step.action == "skip":
            echo(f"{header(step)}: completed in {step.run_dir}, skipped")
    pending = collections.deque(todo)
    free = list(range(len(slots)))
    children = ChildProcesses()
    stopping = False
    try:
        with children.stopped_by_sigterm():
            while children.running or (pending and not stopping):
                while pending and free and not stopping:
                    step, slot = pending.popleft(), free.pop(0)
                    step.replan()
                    step.attempts += 1
                    where = f" ({describe_slot(slots[slot])})" if to_log and describe_slot(slots[slot]) else ""
                    verb = "resuming" if step.action == "resume" else "training"
                    retry = f" (retry {step.attempts - 1} of {retries})" if step.attempts > 1 else ""
                    echo(f"{header(step)}: {verb} into {step.run_dir}{where}{retry}")
                    children.start(command + train_arguments(step.recipe, step, train_args), (step, slot),
                                   slots[slot], step.run_dir / OUTPUT_LOG if to_log else None)
                for (step, slot), code in children.wait_any():
                    free.append(slot)
                    step.returncode = code
                    if step.interrupted:
                        stopping = True
                        echo(f"{header(step)}: interrupted; run the same sweep again to resume")
                        continue
                    if not step.failed:
                        echo(f"{header(step)}: done")
                        continue
                    step.error = last_error(step)
                    if should_retry(step, retries):
                        echo(f"{header(step)}: exit status {code} ({step.error}); retrying with --resume")
                        pending.appendleft(step)
                    else:
                        echo(f"{header(step)}: failed with exit status {code} after {step.attempts} attempt(s): "
                             f"{step.error} ({step.run_dir}); going on with the others")
    except KeyboardInterrupt:
        children.wait_all()
        raise
    return steps


def run_sweep(
    recipe: str,
    variants: Sequence[str],
    runs_dir="runs",
    train_args: Sequence[str] = (),
    command: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
    *,
    seeds: Sequence[int] | None = None,
    parallel=1,
    retries: int = DEFAULT_RETRIES,
) -> list[SweepStep]:
    """Train each variant (and seed) of one recipe into `<runs_dir>/<recipe>-<variant>[-s<seed>]`.

    Args:
        recipe: the recipe file or name, passed to `gdfr train` as given.
        variants: variant names, in order (duplicates dropped).
        runs_dir: the folder of the sweep's run directories.
        train_args: further `gdfr train` options (`--epochs 3`, `--set k=v`, ...).
        command: the train command (default `python -m keras_gdfr.cli train`).
        echo: where progress lines go.
        seeds: train.seed of each repeat (None: one run with the recipe's seed).
        parallel: processes at once (`local_slots`).
        retries: further attempts of a failed cell.

    Returns:
        The steps with their return codes (see `run_steps`).
    """
    pathlib.Path(runs_dir).mkdir(parents=True, exist_ok=True)
    steps = plan_cells([recipe], variants, seeds, runs_dir)
    return run_steps(steps, train_args, parallel=parallel, retries=retries, command=command, echo=echo)


def write_manifest(runs_dir, steps: list[SweepStep], name: str) -> pathlib.Path:
    """Record the grid in `<runs_dir>/sweep.json` (merged with the cells already there).

    {"name": ..., "cells": [{"run_dir": "<folder name>", "recipe", "variant", "seed"}, ...]}:
    gdfr-tui's History shows a sweep's runs together from it.
    """
    path = pathlib.Path(runs_dir) / SWEEP_MANIFEST
    try:
        cells = json.loads(path.read_text()).get("cells", [])
    except (OSError, ValueError, AttributeError):
        cells = []
    known = {cell.get("run_dir") for cell in cells if isinstance(cell, dict)}
    for step in steps:
        if step.run_dir.name not in known:
            cells.append({"run_dir": step.run_dir.name, "recipe": recipe_stem(step.recipe),
                          "variant": step.variant, "seed": step.seed})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "cells": cells}, indent=1) + "\n")
    return path


def summary(steps: list[SweepStep]) -> str:
    """One line per cell: what happened (and, for a failed one, its last error)."""
    lines = []
    for step in steps:
        if step.action == "skip" and step.returncode is None and not step.attempts:
            outcome = "already completed"
        elif step.returncode is None:
            outcome = "not run (sweep stopped)"
        elif step.returncode == 0:
            outcome = "resumed and finished" if step.action == "resume" or step.attempts > 1 else "trained"
            if step.attempts > 1:
                outcome += f" ({step.attempts} attempts)"
        else:
            outcome = f"exit status {step.returncode}"
        line = f"{step.name:24s} {outcome:36s} {step.run_dir}"
        if step.failed and step.error:
            line += f"\n{'':24s} last error: {step.error}"
        lines.append(line)
    return "\n".join(lines)
