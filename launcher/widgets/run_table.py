"""The runs of the runs folder, as a table with marks for comparing."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from launcher.runs import RunRecord, format_percent
from launcher.widgets.run_progress import status_text

COLUMNS = (
    ("mark", " "),
    ("status", "status"),
    ("run", "run"),
    ("dataset", "dataset"),
    ("epoch", "epoch"),
    ("best", "best"),
    ("final", "final"),
    ("test", "test"),
)
LABEL_WIDTH = 30
"""The run label's column is cut (with …) beyond this; the detail line below shows it whole."""


@dataclass(frozen=True)
class RunRow:
    """What the table shows of one run."""

    key: str
    record: RunRecord
    status: str
    label: str = ""


class RunTable(DataTable):
    """One row per run: status, variant, dataset, epochs, best/final val and test accuracy.

    Enter posts `RunTable.Open`; space marks a run for comparing.
    """

    BINDINGS = [Binding("space", "toggle_mark", "Mark", id="history.mark")]

    @dataclass
    class Open(Message):
        """The user opened a run."""

        key: str

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.marked: set[str] = set()
        self.rows_shown: dict[str, RunRow] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, rows: list[RunRow]) -> None:
        """Replaces the rows, keeping the cursor on the same run where it still exists."""
        current = self.current_key
        self.rows_shown = {row.key: row for row in rows}
        self.marked &= set(self.rows_shown)
        self.clear()
        for row in rows:
            self.add_row(*self._cells(row), key=row.key)
        if current in self.rows_shown:
            self.move_cursor(row=self.get_row_index(current))

    def _cells(self, row: RunRow) -> list:
        state = row.record.state
        epochs = f"{state.epoch}/{state.epochs}" if state.epochs else str(state.epoch or "-")
        label = row.label or row.record.name
        if len(label) > LABEL_WIDTH:
            label = label[: LABEL_WIDTH - 1] + "…"
        return [
            Text("●", style="bold magenta") if row.key in self.marked else " ",
            status_text(row.status),
            label,
            row.record.dataset or "-",
            epochs,
            format_percent(state.best_accuracy),
            format_percent(state.final_accuracy),
            format_percent(state.test_accuracy),
        ]

    @property
    def current_key(self) -> str | None:
        """The key of the run under the cursor."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        except Exception:  # noqa: BLE001 - an empty or changing table
            return None

    def action_toggle_mark(self) -> None:
        key = self.current_key
        if key is None:
            return
        self.marked ^= {key}
        self.update_cell(key, "mark", Text("●", style="bold magenta") if key in self.marked else " ")

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Open(event.row_key.value))
