"""A run's header line, its epoch and step progress, and its rates."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar, Static

from launcher.formatting import format_count, format_duration, format_number, format_percent
from launcher.runs import RunState

STATUS_STYLES = {
    "starting": "bold yellow",
    "running": "bold cyan",
    "stopping": "bold yellow",
    "completed": "bold green",
    "interrupted": "bold yellow",
    "failed": "bold red",
    "crashed": "bold red",
}


def status_text(status: str) -> Text:
    """A status word, colored by its meaning."""
    return Text(status, style=STATUS_STYLES.get(status.split(" ")[0], "bold"))


class RunTitle(Static):
    """`run_id  status` and `variant · dataset · backend · params · MACs`."""

    state: reactive[RunState | None] = reactive(None, always_update=True)
    status: reactive[str] = reactive("")
    fallback_name: reactive[str] = reactive("")
    pid: reactive[int | None] = reactive(None)
    """The live trainer's pid (ours or another instance's), shown after the status."""

    def render(self) -> Text:
        state = self.state or RunState()
        title = Text.assemble((state.run_id or self.fallback_name, "bold"), "  ", status_text(self.status or state.status))
        if self.pid:
            title.append(f"  pid {self.pid}", style="dim")
        if not state.run_id:
            return Text("\n").join([title, Text("no run_start event yet", style="dim")])
        facts = [state.variant or "?", state.dataset or "?", state.backend or "?"]
        if state.params is not None:
            facts.append(f"{format_count(state.params)} params")
        if state.macs is not None:
            facts.append(f"{format_count(state.macs)} MACs")
        if state.batch_size:
            facts.append(f"batch {state.batch_size}")
        if state.train_size is not None:
            facts.append(f"{state.train_size}/{state.test_size} images")
        return Text("\n").join([title, Text(" · ".join(facts), style="dim")])


class RunProgress(Vertical):
    """Epoch and step progress bars with lr, time per epoch, ETA and accuracies.

    The run screen sets `state` after each poll; the bars and stats follow it.
    """

    state: reactive[RunState | None] = reactive(None, always_update=True)
    status: reactive[str] = reactive("")
    """The status shown (the screen's, which knows the process); set before `state`."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="bar-row"):
            yield Label("Epoch", id="epoch-label", classes="bar-label")
            yield ProgressBar(total=None, show_eta=False, id="epoch-bar")
        with Horizontal(classes="bar-row"):
            yield Label("Step", id="step-label", classes="bar-label")
            yield ProgressBar(total=None, show_eta=False, id="step-bar")
        yield Static(id="run-stats")

    def watch_state(self, state: RunState | None) -> None:
        if state is None:
            return
        epoch_bar = self.query_one("#epoch-bar", ProgressBar)
        step_bar = self.query_one("#step-bar", ProgressBar)
        running = state.status == "running" and (self.status or "running") in ("running", "stopping")
        if state.epochs:
            epoch_bar.update(total=state.epochs, progress=min(state.epochs, state.epoch + (state.epoch_fraction if running else 0)))
        elif (self.status or state.status) != "starting":  # ended without a run_start
            epoch_bar.update(total=1, progress=0)
            step_bar.update(total=1, progress=0)
        shown_epoch = state.epoch + 1 if running and state.epochs and state.epoch < state.epochs else state.epoch
        self.query_one("#epoch-label", Label).update(f"Epoch {shown_epoch}/{state.epochs or '?'}")
        steps = state.steps or state.steps_per_epoch
        if steps:
            # Once it ended, the steps of an epoch cut short are gone with it: the last kept epoch is whole.
            step = (state.step if state.progress_epoch is not None else 0) if running else steps
            step_bar.update(total=steps, progress=step)
            self.query_one("#step-label", Label).update(f"Step {step}/{steps}")
        self.query_one("#run-stats", Static).update(stats_text(state, self.status or None))


def stats_text(state: RunState, status: str | None = None) -> Text:
    """`lr 0.1 · 29.8s/epoch · ETA 1m 02s · val 31.0% (best 31.0%) · test 41.0%`.

    `status` is the shown one: a crashed run has no ETA and no live train accuracy.
    """
    parts = [
        ("lr ", format_number(state.training_lr)),
        ("", f"{format_duration(state.mean_epoch_seconds)}/epoch"),
    ]
    eta = state.eta_seconds(status)
    if eta is not None:
        parts.append(("ETA ", format_duration(eta)))
    if state.train_accuracy is not None and (status or state.status) == "running":
        parts.append(("train ", format_percent(state.train_accuracy)))
    best = format_percent(state.best_accuracy)
    if state.best_epoch is not None and state.best_accuracy is not None:
        best += f" @{state.best_epoch}"
    parts.append(("val ", f"{format_percent(state.final_accuracy)} (best {best})"))
    if state.test_accuracy is not None:
        parts.append(("test ", format_percent(state.test_accuracy)))
    return key_value_text(parts)


def key_value_text(parts: list[tuple[str, str]]) -> Text:
    """`key value · key value ...` with dim keys and bold values."""
    text = Text()
    for index, (key, value) in enumerate(parts):
        if index:
            text.append(" · ", style="dim")
        text.append(key, style="dim")
        text.append(value, style="bold")
    return text
