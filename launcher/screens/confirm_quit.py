"""The question asked when quitting with runs still training."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label

from launcher.screens.confirm import click_only


class ConfirmQuit(ModalScreen[bool | None]):
    """Asks whether to stop the runs in flight before quitting.

    Dismisses with True (stop them, then quit: `ctrl+s` or a click, never a letter or
    Enter), False (quit and leave them training; they run in their own session), or
    None (do not quit; Enter starts on Cancel).

    Args:
        count: how many runs are still training.
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="confirm_quit.cancel"),
        Binding("ctrl+s", "answer(True)", "Stop and quit", id="confirm_quit.stop"),
        Binding("k", "answer(False)", "Keep running", id="confirm_quit.keep"),
    ]

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def compose(self) -> ComposeResult:
        runs = "1 run is" if self.count == 1 else f"{self.count} runs are"
        with Vertical(id="confirm-dialog"):
            yield Label(f"{runs} still training.", id="confirm-title")
            yield Label(
                "Stop sends SIGINT: each trainer checkpoints and ends as 'interrupted' "
                "(resume it later from History). Keep leaves them training in the background.",
                id="confirm-body",
            )
            with Horizontal(id="confirm-buttons"):
                yield click_only(Button("Stop and quit", id="stop", variant="error"))
                yield Button("Keep running", id="keep", variant="primary")
                yield Button("Cancel", id="cancel")
        yield Footer()  # this screen's keys, not those of the screen below

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#stop")
    def _stop(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#keep")
    def _keep(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_answer(self, stop: bool) -> None:
        self.dismiss(stop)
