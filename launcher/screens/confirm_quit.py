"""The question asked when quitting with runs still training (a `Question` with three answers)."""

from __future__ import annotations

from textual.binding import Binding

from launcher.screens.confirm import Question


class ConfirmQuit(Question):
    """Asks whether to stop the runs in flight before quitting.

    Dismisses with True (stop them, then quit: `ctrl+s` or a click, never a letter or
    Enter), False (quit and leave them training; they run in their own session), or
    None (do not quit; Enter starts on Cancel).

    Args:
        count: how many runs are still training.
    """

    BINDINGS = [
        Binding("escape", "answer(None)", "Cancel", id="confirm_quit.cancel"),
        Binding("ctrl+s", "answer(True)", "Stop and quit", id="confirm_quit.stop"),
        Binding("k", "answer(False)", "Keep running", id="confirm_quit.keep"),
    ]

    def __init__(self, count: int) -> None:
        self.count = count
        runs = "1 run is" if count == 1 else f"{count} runs are"
        super().__init__(
            f"{runs} still training.",
            "Stop sends SIGINT: each trainer checkpoints and ends as 'interrupted' "
            "(resume it later from History). Keep leaves them training in the background.",
            {"stop": ("Stop and quit", True, "error"), "keep": ("Keep running", False, "primary"),
             "cancel": ("Cancel", None, "default")},
            focus="cancel", click_only=("stop",),
        )
