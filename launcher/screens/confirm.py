"""The launcher's one modal question, and its yes/no use: a full-schedule launch, stopping or deleting a run."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label


class Question(ModalScreen):
    """A title, a few lines of what happens, and one button per answer.

    A button (or a key bound to `answer(value)` by the subclass's BINDINGS) dismisses
    with its answer's value. `ConfirmQuit` (`confirm_quit.py`) is the other use.

    Args:
        title: the question, one line.
        body: what happens, a few lines.
        answers: the buttons, left to right: button id -> (label, value, Button variant).
        focus: the id of the button focused first.
        click_only: ids of buttons only a click (or their ctrl key) presses: they take no
            focus, so Tab and Enter never reach them.
    """

    def __init__(self, title: str, body: str, answers: Mapping[str, tuple[str, Any, str]], *,
                 focus: str, click_only: Collection[str] = ()) -> None:
        super().__init__()
        self.title_text, self.body, self.answers = title, body, dict(answers)
        self.first_focus, self.click_only = focus, frozenset(click_only)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Label(self.title_text, id="confirm-title")
            yield Label(self.body, id="confirm-body")
            with Horizontal(id="confirm-buttons"):
                for button_id, (label, _, variant) in self.answers.items():
                    button = Button(label, id=button_id, variant=variant)
                    button.can_focus = button_id not in self.click_only
                    yield button
        yield Footer()  # this screen's keys, not those of the screen below

    def on_mount(self) -> None:
        self.query_one(f"#{self.first_focus}", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.answers[event.button.id][1])

    def action_answer(self, value: Any) -> None:
        self.dismiss(value)


class Confirm(Question):
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
        super().__init__(title, body, {"yes": (yes, True, "warning"), "no": ("Cancel", False, "default")},
                         focus="no", click_only=("yes",))
