"""A yes/no question: a full-schedule launch, deleting a run directory."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label


class Confirm(ModalScreen[bool]):
    """Dismisses with True (`ctrl+y`, a click on the first button) or False (`n`, Esc, Enter, the second).

    No letter and no Tab/Enter sequence confirms (the Yes button takes no focus): text typed
    by mistake outside a field can open the question but never answers it.

    Args:
        title: the question, one line.
        body: what happens, a few lines.
        yes: the label of the button that confirms.
    """

    BINDINGS = [
        Binding("ctrl+y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, body: str, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text, self.body, self.yes = title, body, yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Label(self.title_text, id="confirm-title")
            yield Label(self.body, id="confirm-body")
            with Horizontal(id="confirm-buttons"):
                yield click_only(Button(self.yes, id="yes", variant="warning"))
                yield Button("Cancel", id="no")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # Enter alone does not confirm

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


def click_only(button: Button) -> Button:
    """A button only a click (or its ctrl key) presses: Tab and Enter never reach it."""
    button.can_focus = False
    return button
