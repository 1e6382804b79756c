"""The history screen: every run of the runs folder."""

from __future__ import annotations

import pathlib

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from launcher.launch import run_status
from launcher.runs import RunIndex, RunRecord, Skipped, format_duration, tail_lines
from launcher.screens.compare import CompareScreen
from launcher.screens.run import RunScreen, resumable
from launcher.widgets.run_progress import status_text
from launcher.widgets.run_table import RunRow, RunTable

REFRESH_INTERVAL_S = 2.0


class HistoryScreen(Screen):
    """Every run directory under the runs folder, refreshed every few seconds.

    Enter opens a run, space marks it, `c` compares the marked runs, `r`
    resumes and `s` stops the run under the cursor. Directories that are not
    readable runs are skipped with one notification each.

    Args:
        runs_dir: the runs folder.
    """

    BINDINGS = [
        Binding("c", "compare", "Compare", id="history.compare"),
        Binding("r", "resume", "Resume", id="history.resume"),
        Binding("s", "stop", "Stop", id="history.stop"),
    ]

    def __init__(self, runs_dir: pathlib.Path) -> None:
        super().__init__()
        self.runs_dir = pathlib.Path(runs_dir)
        self.index = RunIndex(self.runs_dir)
        self.notified: set[pathlib.Path] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunTable(id="runs")
        yield Static(id="history-empty")
        yield Static(id="run-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "History"
        self.refresh_runs()
        self.set_interval(REFRESH_INTERVAL_S, self.refresh_runs)
        self.app.runs_changed.subscribe(self, lambda _path: self.refresh_runs())

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    @work(thread=True, exclusive=True, group="scan")
    def refresh_runs(self) -> None:
        """Re-reads the runs folder in a thread, then shows it."""
        runs, skipped = self.index.refresh()
        self.app.call_from_thread(self.show_runs, runs, skipped)

    def show_runs(self, runs: list[RunRecord], skipped: list[Skipped]) -> None:
        """Fills the table and reports newly skipped directories."""
        processes = self.app.processes
        rows = [RunRow(str(r.path), r, run_status(r.state, processes.get(r.path))) for r in runs]
        known = {r.path for r in runs}
        for path, process in processes.items():
            if path not in known and path.parent.resolve() == self.runs_dir.resolve():
                record = RunRecord(path)
                rows.insert(0, RunRow(str(path), record, run_status(record.state, process)))
        for item in skipped:
            if item.path in processes or item.path in self.notified:
                continue
            self.notified.add(item.path)
            self.app.notify(str(item), title="History", severity="warning")
        table = self.query_one(RunTable)
        table.show(rows)
        empty = self.query_one("#history-empty", Static)
        empty.update(
            f"No runs in {self.runs_dir} yet. Launch one (l), or start gdfr-tui --runs DIR."
        )
        self.set_class(not rows, "-empty")
        self._show_detail()

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        table = self.query_one(RunTable)
        row = table.rows_shown.get(table.current_key or "")
        detail = self.query_one("#run-detail", Static)
        self.refresh_bindings()
        if row is None:
            detail.update("")
            return
        state = row.record.state
        text = Text.assemble(status_text(row.status), "  ", (row.record.name, "bold"))
        seconds = (state.end or {}).get("seconds")
        if seconds is not None:
            text.append(f"  {format_duration(seconds)}", style="dim")
        if state.error_message:
            text.append(f"\n{state.error_message}", style="red")
        elif row.status.startswith("crashed"):
            tail = [line for line in tail_lines(self.app.log_path(row.record.path), 5) if line.strip()]
            if tail:
                text.append(f"\n{tail[-1]}", style="red")
        detail.update(text)

    @on(RunTable.Open)
    def _open(self, event: RunTable.Open) -> None:
        self.app.push_screen(RunScreen(pathlib.Path(event.key)))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action not in ("stop", "resume"):
            return True
        row = self._current_row()
        if row is None:
            return False
        process = self.app.processes.get(row.record.path)
        running = process is not None and process.running
        if action == "stop":
            return running
        return not running and resumable(row.status, row.record.path)

    def action_compare(self) -> None:
        table = self.query_one(RunTable)
        marked = [key for key in table.rows_shown if key in table.marked]
        if len(marked) < 2:
            self.app.notify("Mark two or more runs with space, then press c.", title="Compare")
            return
        self.app.push_screen(CompareScreen([pathlib.Path(key) for key in marked]))

    def action_resume(self) -> None:
        row = self._current_row()
        if row is not None:
            self.app.resume_run(row.record.path, row.record.state.backend or None)

    def action_stop(self) -> None:
        row = self._current_row()
        if row is not None:
            self.app.stop_run(row.record.path)

    def _current_row(self) -> RunRow | None:
        table = self.query_one(RunTable)
        return table.rows_shown.get(table.current_key or "")
