"""The tail of a run's `output.log`."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Log


class LogTail(Log):
    """The last lines of a log file; the run screen sets `tail` when the file grows."""

    tail: reactive[tuple[str, ...]] = reactive(tuple)

    def watch_tail(self, lines: tuple[str, ...]) -> None:
        self.clear()
        self.write_lines(lines)
