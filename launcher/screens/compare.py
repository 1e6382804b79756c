"""The compare screen: two or more runs' curves overlaid, their metrics side by side."""

from __future__ import annotations

import pathlib

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from launcher.launch import run_status
from launcher.formatting import format_count, format_duration, format_number, format_percent
from launcher.run_index import RunRecord, differing_settings, run_labels
from launcher.runs import RunState
from launcher.widgets.curves import SERIES_MARKERS, Curve, CurvesPlot
from launcher.widgets.run_progress import status_text

POLL_INTERVAL_S = 1.0

METRICS: tuple[tuple[str, object], ...] = (
    ("run", None),
    ("status", None),
    ("best val acc", lambda s: format_percent(s.best_accuracy, 2)),
    ("final val acc", lambda s: format_percent(s.final_accuracy, 2)),
    ("test acc", lambda s: format_percent(s.test_accuracy, 2)),
    ("final train acc", lambda s: format_percent(_last(s, "accuracy"), 2)),
    ("final val loss", lambda s: format_number(_last(s, "val_loss"))),
    ("epochs", lambda s: f"{s.epoch}/{s.epochs or '?'}"),
    ("time / epoch", lambda s: format_duration(s.mean_epoch_seconds)),
    ("total time", lambda s: s.total_time_text()),
    ("variant", lambda s: s.variant or "-"),
    ("dataset", lambda s: s.dataset or "-"),
    ("backend", lambda s: s.backend or "-"),
    ("params", lambda s: format_count(s.params)),
    ("MACs", lambda s: format_count(s.macs)),
    ("batch size", lambda s: str(s.batch_size or "-")),
)
"""The rows of the metrics table, most telling first; None: filled by `_cell`."""


def _last(state: RunState, metric: str) -> float | None:
    _, values = state.series(metric)
    return values[-1] if values else None


class CompareScreen(Screen):
    """Validation accuracy and loss of several runs overlaid, and a metrics table.

    Each run gets a number (`#1`, `#2`, ...) used in the legends and columns.

    Args:
        run_dirs: the runs to compare, in order.
    """

    BINDINGS = [Binding("escape", "back", "Back", id="compare.back")]

    def __init__(self, run_dirs: list[pathlib.Path]) -> None:
        super().__init__()
        self.records = [RunRecord(path) for path in run_dirs]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="plots"):
            yield CurvesPlot("val accuracy (%)", percent=True, id="compare-accuracy")
            yield CurvesPlot("val loss", id="compare-loss")
        yield DataTable(id="compare-table", cursor_type="none", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Compare {len(self.records)} runs"
        table = self.query_one(DataTable)
        table.add_column("", key="metric")
        for index, record in enumerate(self.records, start=1):
            table.add_column(f"#{index}", key=str(index))
        self.poll()
        self.set_interval(POLL_INTERVAL_S, self.poll)

    def label(self, index: int, state: RunState) -> str:
        """`#1 tiny 11-28 07:15 lr=0.05`: the number and the run's readable label."""
        record = self.records[index - 1]
        return f"#{index} {run_labels(self.records).get(record.path, state.variant or '')}".strip()

    def poll(self) -> None:
        """Reads new events of every run; redraws when any changed."""
        changed = False
        for record in self.records:
            try:
                changed |= bool(record.poll())
            except OSError:
                continue
        if not changed and self.query_one(DataTable).row_count:
            return
        states = [record.state for record in self.records]
        for plot, metric in (("#compare-accuracy", "val_accuracy"), ("#compare-loss", "val_loss")):
            self.query_one(plot, CurvesPlot).curves = tuple(
                Curve(self.label(i, s), *map(tuple, s.series(metric)), marker=SERIES_MARKERS[(i - 1) % len(SERIES_MARKERS)])
                for i, s in enumerate(states, 1)
            )
        table = self.query_one(DataTable)
        table.clear()
        for name, value in METRICS:
            cells = [self._cell(name, value, record) for record in self.records]
            table.add_row(name, *cells, key=name)
        # The settings that tell the runs apart (overrides, lr, limits, ...), from their recipes.
        diffs = differing_settings([record.recipe() for record in self.records])
        for key in (diffs[0] if diffs else {}):
            table.add_row(key, *[diff.get(key, "-") for diff in diffs], key=f"setting:{key}")

    def _cell(self, name: str, value, record: RunRecord):
        if value is not None:
            return value(record.state)
        if name == "run":  # the short label (History's); the full run id would not fit three runs at 80x24
            index = self.records.index(record) + 1
            return self.label(index, record.state).partition(" ")[2]
        return status_text(run_status(record.state, self.app.processes.get(record.path)))

    def action_back(self) -> None:
        self.dismiss()
