"""The run screen: one run directory followed live, or a finished run's curves and eval."""

from __future__ import annotations

import os
import pathlib
import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from launcher.launch import run_status
from keras_gdfr.training.schedule import epochs_text
from launcher.machine import Sampler
from launcher.owner import owner_alive, read_owner
from launcher.formatting import format_number, format_percent
from launcher.run_index import RunRecord, tail_lines
from launcher.runs import RunState
from launcher.widgets.confusion import ConfusionMatrix
from launcher.widgets.curves import Curve, CurvesPlot
from launcher.widgets.log_tail import LogTail
from launcher.widgets.machine_panel import MachinePanel
from launcher.widgets.run_progress import RunProgress, RunTitle, key_value_text

POLL_INTERVAL_S = 0.5
MACHINE_INTERVAL_S = 2.0
CURVES_INTERVAL_S = 2.0
"""Step-level curves redraw at most this often (plotext is the costliest thing on screen)."""
LOG_LINES = 200


def accuracy_curves(state: RunState, prefix: str = "") -> tuple[Curve, ...]:
    """Train accuracy per logged step (from `progress`), validation accuracy per epoch.

    Runs without `progress` events fall back on the per-epoch train accuracy.
    """
    return _curves(state, prefix, "accuracy", "val_accuracy")


def loss_curves(state: RunState, prefix: str = "") -> tuple[Curve, ...]:
    """Train loss per logged step (from `progress`), validation loss per epoch."""
    return _curves(state, prefix, "loss", "val_loss")


def _curves(state: RunState, prefix: str, train: str, val: str) -> tuple[Curve, ...]:
    steps = state.step_series(train)
    train_curve = Curve(f"{prefix}train (step)", *map(tuple, steps)) if steps[0] else \
        Curve(f"{prefix}train", *map(tuple, state.series(train)))
    return (train_curve, Curve(f"{prefix}val", *map(tuple, state.series(val))))


def best_title(state: RunState) -> str:
    """`accuracy (%) · best 47.0% @ 3` once a validation epoch exists."""
    epoch = state.best_epoch
    if epoch is None:
        return "accuracy (%)"
    return f"accuracy (%) · best {format_percent(state.history[epoch].val_accuracy)} @ epoch {epoch}"


def resumable(status: str, run_dir: pathlib.Path) -> bool:
    """Whether `gdfr train --resume` can continue a run: it stopped early and has its recipe.json."""
    stopped = status in ("interrupted", "failed") or status.startswith("crashed")
    return stopped and (run_dir / "recipe.json").is_file()


def failure_message(state: RunState, status: str, output: list[str]) -> str | None:
    """The message to show for a failed or crashed run.

    Its `error` event; else, for a process that died, its output's last error-like
    line (the CLI's `error: ...`, a traceback's last line); else what is known: the
    trainer ended without `run_end` (killed: the exit status names the signal).
    """
    if state.error_message:
        return state.error_message
    if not (status == "failed" or status.startswith("crashed")):
        return None
    for line in reversed(output):
        text = line.strip()
        if text and not text.startswith("$ ") and _looks_like_error(text):
            return text
    how = _exit_text(status)
    done = f"; {epochs_text(state.epoch)} checkpointed, ctrl+r resumes from there" if state.epoch else ""
    return f"the trainer ended without writing run_end ({how}){done}; see output.log"


_ERROR_WORDS = ("error", "exception", "traceback", "killed", "aborted", "segmentation fault")


def _looks_like_error(line: str) -> bool:
    lowered = line.lower()
    return lowered.startswith(_ERROR_WORDS) or any(f"{word}:" in lowered for word in ("error", "exception"))


def _exit_text(status: str) -> str:
    """`crashed (exit -9)` -> `killed by SIGKILL`."""
    code = status.partition("(exit ")[2].rstrip(")")
    if code.lstrip("-").isdigit() and int(code) < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-int(code)).name}"
        except ValueError:
            return f"killed by signal {-int(code)}"
    if code:
        return f"exit {code}"
    return "its process is gone"


class RunScreen(Screen):
    """Follows one run directory: progress, curves, lr, ETA, output tail, evaluation.

    Polls `events.jsonl` every `POLL_INTERVAL_S` seconds, reading only new
    bytes; `ctrl+s` stops the run (after a yes), `ctrl+r` resumes a stopped one.

    Args:
        run_dir: the run directory.
    """

    BINDINGS = [
        Binding("escape", "back", "Back", id="run.back"),
        Binding("ctrl+s", "stop", "Stop", id="run.stop"),  # ctrl keys: see HistoryScreen
        Binding("ctrl+r", "resume", "Resume", id="run.resume"),
        Binding("c", "tab('curves')", "Curves", show=False, id="run.curves"),
        Binding("e", "tab('evaluation')", "Evaluation", show=False, id="run.evaluation"),
        Binding("o", "tab('output')", "Output", show=False, id="run.output"),
        Binding("m", "tab('machine')", "Machine", show=False, id="run.machine"),
        Binding("p", "show_path", "Path", id="run.path"),
    ]

    def __init__(self, run_dir: pathlib.Path) -> None:
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.record = RunRecord(self.run_dir)
        self.status = ""
        self.read_error: str | None = None
        self._drawn_epochs: tuple | None = None
        self._log_stamp: tuple | None = None
        self._eval_stamp: tuple | None = None
        self._output: list[str] = []
        self._alive: tuple | None = None
        self._curves_at = 0.0
        self.sampler: Sampler | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunTitle(id="run-title")
        yield RunProgress(id="run-progress")
        yield Static(id="run-error")
        with TabbedContent(initial="curves", id="run-tabs"):
            with TabPane("Curves (c)", id="curves"):
                with Horizontal(classes="plots"):
                    yield CurvesPlot("accuracy (%)", percent=True, id="accuracy-plot")
                    yield CurvesPlot("loss", id="loss-plot")
            with TabPane("Evaluation (e)", id="evaluation"):
                yield Static("No eval.json yet: it is written by the end-of-run evaluation.", id="eval-summary")
                yield ConfusionMatrix(id="confusion")
            with TabPane("Output (o)", id="output"):
                yield LogTail(id="log", max_lines=LOG_LINES)
            with TabPane("Machine (m)", id="machine"):
                yield MachinePanel(id="machine-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.sampler = getattr(self.app, "sampler", Sampler)()
        self.sub_title = "Run"
        self.query_one(RunTitle).fallback_name = self.run_dir.name
        self.poll()
        self.set_interval(POLL_INTERVAL_S, self.poll)
        self.sample_machine()
        self.set_interval(MACHINE_INTERVAL_S, self.sample_machine)

    @property
    def process(self):
        """The `TrainProcess` the launcher started for this run, if any."""
        return self.app.processes.get(self.run_dir)

    @property
    def trainer_alive(self) -> bool:
        """Whether a trainer works on this run now: ours, or any other on this host (run.lock)."""
        process = self.process
        if process is not None and process.running:
            return True
        return owner_alive(self.run_dir, read_owner(self.run_dir, self.record.state))

    def sample_machine(self) -> None:
        """CPU, memory (and GPU) figures of the run's process and the host, in a thread."""
        self._sample(self.trainer_pid() if self.trainer_alive else None)

    def trainer_pid(self) -> int | None:
        process = self.process
        if process is not None and process.running:
            return process.pid
        owner = read_owner(self.run_dir, self.record.state)
        return owner.pid if owner else None

    @work(thread=True, exclusive=True, group="machine")
    def _sample(self, pid: int | None) -> None:
        sample = self.sampler.sample(pid)
        self.app.call_from_thread(self._show_machine, sample, pid)

    def _show_machine(self, sample, pid) -> None:
        panel = self.query_one(MachinePanel)
        panel.update_panel(self.record.state, self.status, sample, pid,
                           read_owner(self.run_dir, self.record.state))

    def poll(self) -> None:
        """Reads new events, output and evaluation; redraws what changed."""
        try:
            events = self.record.poll()
            self.read_error = None
        except OSError as error:
            events = []
            self.read_error = f"events.jsonl unreadable: {error.strerror or error}"
        self._poll_output()
        state = self.record.state
        alive = self.trainer_alive
        status = run_status(state, self.process)
        if self.process is None and state.status == "running" and not alive:
            status = "crashed"  # another instance's run whose trainer is gone (kill -9)
        elif self.process is None and alive and self.app.foreign_stops.get(self.run_dir) and status == "running":
            status = "stopping"
        process = self.process
        # The footer's keys depend on whether a trainer is alive, which can change without an event.
        liveness = (alive, process.running if process else None)
        if events or status != self.status or self._drawn_epochs is None or liveness != self._alive:
            self._alive = liveness
            self.status = status
            self.query_one(RunTitle).state = state
            self.query_one(RunTitle).status = status
            self.query_one(RunTitle).pid = self.trainer_pid() if alive else None
            self.query_one(RunProgress).status = status
            self.query_one(RunProgress).state = state
            self._draw_curves(state)
            self._show_error(state, status)
            self.refresh_bindings()
        self._poll_eval()

    def _draw_curves(self, state: RunState) -> None:
        stamp = (tuple((r.epoch, r.val_accuracy, r.val_loss) for r in state.epochs_list), len(state.steps_log))
        if stamp == self._drawn_epochs:
            return
        now = time.monotonic()
        new_epoch = self._drawn_epochs is None or stamp[0] != self._drawn_epochs[0]
        if not new_epoch and now - self._curves_at < CURVES_INTERVAL_S:
            return  # new steps only: redrawn at the next interval
        self._drawn_epochs, self._curves_at = stamp, now
        accuracy = self.query_one("#accuracy-plot", CurvesPlot)
        accuracy.plot_title = best_title(state)
        accuracy.curves = accuracy_curves(state)
        self.query_one("#loss-plot", CurvesPlot).curves = loss_curves(state)

    def _show_error(self, state: RunState, status: str) -> None:
        message = self.read_error or failure_message(state, status, self._output)
        banner = self.query_one("#run-error", Static)
        banner.update(Text.assemble(("error  ", "bold"), message or ""))
        banner.display = bool(message)

    def _poll_output(self) -> None:
        path = self.app.log_path(self.run_dir)
        stamp = (path, _stamp(path))
        if stamp == self._log_stamp:
            return
        self._log_stamp = stamp
        self._output = tail_lines(path, LOG_LINES)
        self.query_one(LogTail).tail = tuple(self._output)

    def _poll_eval(self) -> None:
        stamp = _stamp(self.run_dir / "eval.json")
        if stamp == self._eval_stamp:
            return
        self._eval_stamp = stamp
        evaluation = self.record.eval()
        summary = self.query_one("#eval-summary", Static)
        self.query_one(ConfusionMatrix).show(evaluation)
        if evaluation is None:
            text = (
                "eval.json is unreadable." if stamp else
                "No eval.json yet: it is written by the end-of-run evaluation."
            )
            summary.update(text)
            return
        parts = [
            ("accuracy ", format_percent(evaluation.get("accuracy"), 2)),
            ("loss ", format_number(evaluation.get("loss"))),
            ("images ", str(evaluation.get("num_examples", "-"))),
        ]
        if evaluation.get("macro_auc") is not None:
            parts.append(("macro AUC ", format_number(evaluation["macro_auc"], 3)))
        if evaluation.get("checkpoint"):
            parts.append(("checkpoint ", str(evaluation["checkpoint"])))
        summary.update(key_value_text(parts))

    # Actions -----------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("stop", "resume"):
            running = bool(self._alive and self._alive[0])
            if action == "stop":
                return running
            return not running and resumable(self.status, self.run_dir)
        return True

    def action_show_path(self) -> None:
        """The run directory and what the run produced, as a notice (selectable in most terminals)."""
        self._path_toast_until = show_path_toast(self, self.run_dir)

    def on_screen_suspend(self) -> None:
        clear_path_toast(self)

    def on_unmount(self) -> None:
        clear_path_toast(self)

    def action_back(self) -> None:
        self.dismiss()

    def action_stop(self) -> None:
        self.app.ask_stop(self.run_dir, then=self.poll)

    def action_resume(self) -> None:
        self.app.resume_run(self.run_dir, self.record.state.backend or None)
        self.poll()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab


PATH_TOAST_S = 15


def show_path_toast(screen: Screen, run_dir: pathlib.Path) -> float:
    """`p`'s notice (the run directory, what it produced); returns when it would go by itself."""
    screen.app.notify(produced_text(run_dir), title=str(run_dir), timeout=PATH_TOAST_S)
    return time.monotonic() + PATH_TOAST_S


def clear_path_toast(screen: Screen) -> None:
    """Leaving a screen takes its `p` notice along: it covered the next screen for up to 15 s."""
    if time.monotonic() < getattr(screen, "_path_toast_until", 0.0):
        screen._path_toast_until = 0.0
        screen.app.clear_notifications()


def produced_text(run_dir: pathlib.Path) -> str:
    """The files a run produced that a user opens next: figures, eval, model, TensorBoard."""
    lines = []
    for pattern, what in (("eval.json", "evaluation"), ("*.png", "figure"), ("**/*.png", "figure"),
                          ("model.keras", "model"), ("events.out.tfevents.*", "TensorBoard"),
                          ("output.log", "log")):
        for path in sorted(run_dir.glob(pattern)):
            line = f"{what}: {path.relative_to(run_dir)}"
            if line not in lines:
                lines.append(line)
    if any(line.startswith("TensorBoard") for line in lines):
        lines.append(f"tensorboard --logdir {run_dir.parent}")
    lines.append(f"gdfr report {run_dir}")
    return "\n".join(lines) or "nothing yet"


def _stamp(path: pathlib.Path) -> tuple | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)
