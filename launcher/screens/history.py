"""The history screen: every run of the runs folder."""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import shutil
import subprocess

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from launcher.launch import run_status
from launcher.owner import owner_alive, read_owner
from launcher.run_index import (
    RunIndex,
    RunRecord,
    Skipped,
    Sweep,
    read_sweep,
    run_labels,
    sweep_grid,
    tail_lines,
)
from launcher.screens.compare import CompareScreen
from launcher.screens.confirm import Confirm
from launcher.screens.run import RunScreen, clear_path_toast, resumable, show_path_toast
from launcher.widgets.run_progress import status_text
from launcher.widgets.run_table import RunRow, RunTable

REFRESH_INTERVAL_S = 2.0


class HistoryScreen(Screen):
    """Every run directory under the runs folder, refreshed every few seconds.

    The runs of the folder's `gdfr sweep` (its sweep.json) are listed together, and
    the detail line of one of them shows the sweep's grid. Enter opens a run, space marks it,
    `c` compares the marked runs, `ctrl+r` resumes and `ctrl+s` stops (after a yes) the run
    under the cursor. Directories that are not
    readable runs are skipped with one notification each.

    Args:
        runs_dir: the runs folder.
    """

    BINDINGS = [
        Binding("c", "compare", "Compare", id="history.compare"),
        # What acts on a run takes a ctrl key (ordinary typing never makes one) and, for
        # stop and delete, a yes: letters typed outside a field must not act on a run.
        Binding("ctrl+r", "resume", "Resume", id="history.resume"),
        Binding("ctrl+s", "stop", "Stop", id="history.stop"),
        Binding("slash", "filter", "Filter", id="history.filter"),
        Binding("ctrl+d", "delete", "Delete", id="history.delete"),
        Binding("p", "show_path", "Path", show=False, id="history.path"),
        Binding("g", "report", "Report", show=False, id="history.report"),
        Binding("escape", "leave_filter", "Leave filter", show=False, id="history.leave_filter"),
    ]

    AUTO_FOCUS = "#runs"

    def __init__(self, runs_dir: pathlib.Path) -> None:
        super().__init__()
        self.runs_dir = pathlib.Path(runs_dir)
        self.index = RunIndex(self.runs_dir)
        self.notified: set[pathlib.Path] = set()
        self._last: tuple[list[RunRecord], list[Skipped]] = ([], [])
        self.sweep: Sweep | None = None
        self._statuses: dict[str, tuple[str, RunRecord]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(id="history-filter", compact=True,
                    placeholder="/ filter: words that match status, variant, dataset or run (all must match)")
        yield RunTable(id="runs")
        yield Static(id="history-empty")
        yield Static(id="run-detail")
        yield Footer(compact=True)  # every key fits 80 columns

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

    def status_of(self, record: RunRecord) -> str:
        """The shown status: ours knows the process; others ask the run's lock / pid."""
        process = self.app.processes.get(record.path)
        if process is None and record.state.status == "running":
            alive = owner_alive(record.path, read_owner(record.path, record.state))
            return "running" if alive else "crashed"
        return run_status(record.state, process)

    def show_runs(self, runs: list[RunRecord], skipped: list[Skipped]) -> None:
        """Fills the table (newest first, filtered) and reports newly skipped directories."""
        self._last = (runs, skipped)
        processes = self.app.processes
        labels = run_labels(runs)
        rows = [RunRow(str(r.path), r, self.status_of(r), labels.get(r.path, "")) for r in runs]
        self.sweep = read_sweep(self.runs_dir)
        self._statuses = {row.record.path.name: (row.status, row.record) for row in rows}
        if self.sweep is not None:
            rows = _sweep_together(rows, self.sweep)
        known = {r.path for r in runs}
        for path, process in processes.items():
            if path not in known and path.parent.resolve() == self.runs_dir.resolve():
                record = RunRecord(path)
                rows.insert(0, RunRow(str(path), record, run_status(record.state, process)))
        words = self.query_one("#history-filter", Input).value.lower().split()
        if words:
            rows = [row for row in rows if all(word in _haystack(row) for word in words)]
        for item in skipped:
            if item.path in processes or item.path in self.notified:
                continue
            if self.sweep is not None and item.path in self.sweep:  # a sweep's run starting: output.log first
                continue
            self.notified.add(item.path)
            self.app.notify(str(item), title="History", severity="warning")
        table = self.query_one(RunTable)
        table.show(rows)
        empty = self.query_one("#history-empty", Static)
        if words and self._last[0]:
            empty.update(f"No run matches {' '.join(words)!r}. Esc, then clear the filter.")
        else:
            empty.update(f"No runs in {self.runs_dir} yet. Launch one (l), or start gdfr-tui --runs DIR.")
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
        if state.end is not None and state.total_seconds is not None:
            text.append(f"  trained {state.total_time_text()}", style="dim")
        if row.status in ("running", "starting", "stopping"):
            process = self.app.processes.get(row.record.path)
            owner = read_owner(row.record.path, state)
            pid = process.pid if process is not None and process.running else (owner.pid if owner else None)
            if pid:
                text.append(f"  pid {pid}", style="dim")
        if row.label:
            text.append(f"\n{row.label}", style="dim")
        text.append("   p files · g gdfr report · Enter open", style="dim italic")
        in_sweep = self.sweep is not None and row.record.path in self.sweep
        detail.set_class(in_sweep, "-sweep")
        if in_sweep:
            text.append("\n" + "\n".join(sweep_grid(self.sweep, self._statuses)))
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
        if action == "leave_filter":
            return self.query_one("#history-filter", Input).has_focus
        if action not in ("stop", "resume", "delete", "show_path", "report"):
            return True
        row = self._current_row()
        if row is None:
            return False
        running = row.status in ("running", "starting", "stopping")
        if action == "stop":
            return running
        if action == "delete":
            return not running
        if action == "resume":
            return not running and resumable(row.status, row.record.path)
        return True

    @on(Input.Changed, "#history-filter")
    def _filter_changed(self) -> None:
        self.show_runs(*self._last)

    @on(Input.Submitted, "#history-filter")
    def action_leave_filter(self) -> None:
        self.query_one(RunTable).focus()

    def action_filter(self) -> None:
        self.query_one("#history-filter", Input).focus()

    def action_show_path(self) -> None:
        row = self._current_row()
        if row is not None:
            self._path_toast_until = show_path_toast(self, row.record.path)

    def on_screen_suspend(self) -> None:
        clear_path_toast(self)

    def action_delete(self) -> None:
        row = self._current_row()
        if row is None:
            return
        path = row.record.path

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            if owner_alive(path, read_owner(path, row.record.state)) or path in [p.run_dir for p in self.app.running]:
                self.app.notify(f"{path.name} is training; stop it first.", title="Delete", severity="error")
                return
            try:
                shutil.rmtree(path)
            except OSError as error:
                self.app.notify(f"could not delete {path}: {error}", title="Delete", severity="error")
                return
            self.app.notify(f"deleted {path}", title="Delete")
            self.refresh_runs()

        self.app.push_screen(Confirm(
            f"Delete {path.name}?",
            f"Removes {path} with its checkpoints, model and logs. This cannot be undone.",
            yes="Delete",
        ), answer)

    def action_report(self) -> None:
        """`gdfr report` of the marked runs (or the one under the cursor), in a worker."""
        table = self.query_one(RunTable)
        keys = [key for key in table.rows_shown if key in table.marked] or [table.current_key]
        runs = [pathlib.Path(k) for k in keys if k]
        if runs:
            out = self.runs_dir / ".gdfr-tui" / f"report-{datetime.datetime.now():%Y%m%d-%H%M%S}"
            self.app.notify(f"gdfr report of {len(runs)} run(s) -> {out}", title="Report")
            self._report(runs, out)

    @work(thread=True, group="report")
    def _report(self, runs: list[pathlib.Path], out: pathlib.Path) -> None:
        command = [*self.app.trainer, "report", *map(str, runs), "--out", str(out), "--no-count"]
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode == 0:
            files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
            message = f"{out}\n" + "\n".join(map(str, files[:12]))
            self.app.call_from_thread(self.app.notify, message, title="Report written", timeout=20)
        else:
            last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
            self.app.call_from_thread(self.app.notify, f"gdfr report failed: {last}", title="Report",
                                      severity="error")

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
            self.app.ask_stop(row.record.path)

    def _current_row(self) -> RunRow | None:
        table = self.query_one(RunTable)
        return table.rows_shown.get(table.current_key or "")


def _sweep_together(rows: list[RunRow], sweep: Sweep) -> list[RunRow]:
    """The sweep's rows in its grid's order, where its first row was, labelled `· sweep`."""
    order = {cell.run_dir: i for i, cell in enumerate(sweep.cells)}
    members = sorted((r for r in rows if r.record.path.name in order), key=lambda r: order[r.record.path.name])
    if not members:
        return rows
    first = next(i for i, r in enumerate(rows) if r.record.path.name in order)
    others = [r for r in rows if r.record.path.name not in order]
    members = [dataclasses.replace(r, label=f"{r.label or r.record.name} · sweep") for r in members]
    return others[:first] + members + others[first:]


def _haystack(row: RunRow) -> str:
    record = row.record
    return " ".join((row.status, record.variant, record.dataset, record.name, row.label)).lower()
