"""The run screen: one run directory followed live, or a finished run's curves and eval."""

from __future__ import annotations

import os
import pathlib

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from launcher.launch import run_status
from launcher.runs import RunRecord, RunState, format_number, format_percent, tail_lines
from launcher.widgets.confusion import ConfusionMatrix
from launcher.widgets.curves import Curve, CurvesPlot
from launcher.widgets.log_tail import LogTail
from launcher.widgets.run_progress import RunProgress, RunTitle, key_value_text

POLL_INTERVAL_S = 0.5
LOG_LINES = 200


def accuracy_curves(state: RunState, prefix: str = "") -> tuple[Curve, ...]:
    """Train and validation accuracy of a run."""
    return tuple(
        Curve(f"{prefix}{label}", *map(tuple, state.series(metric)))
        for label, metric in (("train", "accuracy"), ("val", "val_accuracy"))
    )


def loss_curves(state: RunState, prefix: str = "") -> tuple[Curve, ...]:
    """Train and validation loss of a run."""
    return tuple(
        Curve(f"{prefix}{label}", *map(tuple, state.series(metric)))
        for label, metric in (("train", "loss"), ("val", "val_loss"))
    )


def resumable(status: str, run_dir: pathlib.Path) -> bool:
    """Whether `gdfr train --resume` can continue a run: it stopped early and has its recipe.json."""
    stopped = status in ("interrupted", "failed") or status.startswith("crashed")
    return stopped and (run_dir / "recipe.json").is_file()


def failure_message(state: RunState, status: str, output: list[str]) -> str | None:
    """The message to show for a failed or crashed run: its error event, else its output's last line."""
    if state.error_message:
        return state.error_message
    if status == "failed" or status.startswith("crashed"):
        for line in reversed(output):
            if line.strip() and not line.startswith("$ "):
                return line.strip()
        return "the trainer ended without a message (see output.log)"
    return None


class RunScreen(Screen):
    """Follows one run directory: progress, curves, lr, ETA, output tail, evaluation.

    Polls `events.jsonl` every `POLL_INTERVAL_S` seconds, reading only new
    bytes; `s` stops a run the launcher started, `r` resumes a stopped one.

    Args:
        run_dir: the run directory.
    """

    BINDINGS = [
        Binding("escape", "back", "Back", id="run.back"),
        Binding("s", "stop", "Stop", id="run.stop"),
        Binding("r", "resume", "Resume", id="run.resume"),
        Binding("c", "tab('curves')", "Curves", show=False, id="run.curves"),
        Binding("e", "tab('evaluation')", "Evaluation", show=False, id="run.evaluation"),
        Binding("o", "tab('output')", "Output", show=False, id="run.output"),
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
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Run"
        self.query_one(RunTitle).fallback_name = self.run_dir.name
        self.poll()
        self.set_interval(POLL_INTERVAL_S, self.poll)

    @property
    def process(self):
        """The `TrainProcess` the launcher started for this run, if any."""
        return self.app.processes.get(self.run_dir)

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
        status = run_status(state, self.process)
        if events or status != self.status or self._drawn_epochs is None:
            self.status = status
            self.query_one(RunTitle).state = state
            self.query_one(RunTitle).status = status
            self.query_one(RunProgress).status = status
            self.query_one(RunProgress).state = state
            self._draw_curves(state)
            self._show_error(state, status)
            self.refresh_bindings()
        self._poll_eval()

    def _draw_curves(self, state: RunState) -> None:
        stamp = tuple((r.epoch, r.val_accuracy, r.val_loss) for r in state.epochs_list)
        if stamp == self._drawn_epochs:
            return
        self._drawn_epochs = stamp
        self.query_one("#accuracy-plot", CurvesPlot).curves = accuracy_curves(state)
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
        process = self.process
        running = process is not None and process.running
        if action == "stop":
            return running
        if action == "resume":
            return not running and resumable(self.status, self.run_dir)
        return True

    def action_back(self) -> None:
        self.dismiss()

    def action_stop(self) -> None:
        self.app.stop_run(self.run_dir)
        self.poll()

    def action_resume(self) -> None:
        self.app.resume_run(self.run_dir, self.record.state.backend or None)
        self.poll()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab


def _stamp(path: pathlib.Path) -> tuple | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)
