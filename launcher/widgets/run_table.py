"""The runs of the runs folder, as a table with marks for comparing."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from launcher.formatting import format_percent
from launcher.run_index import RunRecord
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
"""The run label's column is cut (with …) beyond this, or sooner where the table is narrower than
its columns (a starting run's long id at 80x24); the detail line below shows it whole."""
MIN_LABEL_WIDTH = 12
RUN_COLUMN = [key for key, _ in COLUMNS].index("run")
CELL_PADDING = 2  # DataTable's cell_padding on both sides


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
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def on_resize(self) -> None:
        if self.rows_shown:
            self.show(list(self.rows_shown.values()))

    def show(self, rows: list[RunRow]) -> None:
        """Replaces the rows, keeping the cursor on the same run where it still exists."""
        current = self.current_key
        self.rows_shown = {row.key: row for row in rows}
        self.marked &= set(self.rows_shown)
        # New columns each time: a DataTable column only ever widens, so a run shown once with a
        # long id (starting, before its label is known) would keep pushing `test` off-screen.
        self.clear(columns=True)
        self._add_columns()
        cells = [self._cells(row) for row in rows]
        width = self._label_width(cells)
        for row, row_cells in zip(rows, cells):
            label = row_cells[RUN_COLUMN]
            row_cells[RUN_COLUMN] = label if len(label) <= width else label[: width - 1] + "…"
            self.add_row(*row_cells, key=row.key)
        if current in self.rows_shown:
            self.move_cursor(row=self.get_row_index(current))

    def _label_width(self, cells: list[list]) -> int:
        """The widest run label that leaves every other column on screen (LABEL_WIDTH at most)."""
        room = self.size.width - 2  # a vertical scrollbar may take two columns
        if room <= 0:
            return LABEL_WIDTH
        others = sum(
            max([len(title)] + [_cell_width(row[index]) for row in cells]) + CELL_PADDING
            for index, (_, title) in enumerate(COLUMNS) if index != RUN_COLUMN
        )
        return max(MIN_LABEL_WIDTH, min(LABEL_WIDTH, room - others - CELL_PADDING))

    def _cells(self, row: RunRow) -> list:
        state = row.record.state
        epochs = f"{state.epoch}/{state.epochs}" if state.epochs else str(state.epoch or "-")
        label = row.label or row.record.name
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


def _cell_width(value) -> int:
    return value.cell_len if isinstance(value, Text) else cell_len(str(value))
