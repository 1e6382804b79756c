"""The launch form: the overrides a run takes over its recipe."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Input, Label, Select

from launcher.launch import BACKENDS, Overrides
from launcher.recipes import parse_sets

_INTEGER_FIELDS = {
    "epochs": "--epochs",
    "batch-size": "--batch-size",
    "limit-train": "--limit-train",
    "limit-test": "--limit-test",
}
_LABELS = {"epochs": "Epochs", "batch-size": "Batch", "limit-train": "Limit train", "limit-test": "Limit test"}


def integer_problem(field: str, text: str) -> str:
    """The message for a number field holding something other than a whole number; "" when fine.

    Empty is fine (the recipe's value). Letters are kept in the field and named
    here rather than dropped silently.
    """
    text = text.strip()
    if not text or text.isdigit():
        return ""
    return f"{_LABELS[field]}: {text!r} is not a whole number (leave it empty for the recipe's value)"


class LaunchForm(Grid):
    """Epochs, batch size, backend, data, run directory, limits and `--set` items.

    Pressing Launch (or Enter in a field) posts `LaunchForm.Submitted` with the
    parsed overrides; a field that does not parse sets `error` instead. The
    screen sets `error` too when the recipe refuses the overrides.

    Args:
        backend: the backend selected at first.
    """

    @dataclass
    class Submitted(Message):
        """The user asked to launch with these overrides."""

        overrides: Overrides

    BINDINGS = [Binding("escape", "leave", "Leave form", show=False, id="form.leave")]

    error: reactive[str] = reactive("")
    """The message shown under the form; empty when there is none."""

    defaults: reactive[dict] = reactive(dict, always_update=True)
    """The recipe's values, shown as placeholders (`epochs`, `batch_size`)."""

    def __init__(self, backend: str = "tensorflow", **kwargs) -> None:
        super().__init__(**kwargs)
        self.initial_backend = backend if backend in BACKENDS else BACKENDS[0]

    def compose(self) -> ComposeResult:
        yield Label("Epochs", classes="field-label")
        yield Input(id="epochs", placeholder="recipe", compact=True, classes="number")
        yield Label("Batch", classes="field-label")
        yield Input(id="batch-size", placeholder="recipe", compact=True, classes="number")
        yield Label("Backend", classes="field-label")
        yield Select(
            [(name, name) for name in BACKENDS],
            value=self.initial_backend,
            allow_blank=False,
            compact=True,
            id="backend",
        )
        yield Label("Limit train", classes="field-label")
        yield Input(id="limit-train", placeholder="all", compact=True, classes="number")
        yield Label("Limit test", classes="field-label")
        yield Input(id="limit-test", placeholder="all", compact=True, classes="number")
        yield Label("")
        yield Button("Launch", id="launch", variant="primary", compact=True)
        yield Label("Data", classes="field-label")
        yield Input(id="data", placeholder="recipe's dataset (or an ImageFolder path)", compact=True, classes="wide")
        yield Label("Run dir", classes="field-label")
        yield Input(id="run-dir", placeholder="auto: <runs>/<dataset>-<variant>-<time>", compact=True, classes="wide")
        yield Label("--set", classes="field-label")
        yield Input(id="sets", placeholder="dotted.key=value ...", compact=True, classes="wide")
        yield Label("", id="form-error", classes="wide-all")

    def watch_defaults(self, defaults: dict) -> None:
        for field, key in (("epochs", "epochs"), ("batch-size", "batch_size")):
            value = defaults.get(key)
            self.query_one(f"#{field}", Input).placeholder = f"{value}" if value else "recipe"

    def watch_error(self, error: str) -> None:
        label = self.query_one("#form-error", Label)
        label.update(error)
        label.set_class(bool(error), "-error")

    def action_leave(self) -> None:
        """Moves focus out of the form (to the screen's first focusable widget), freeing one-key bindings."""
        for widget in self.screen.focus_chain:
            if self not in widget.ancestors:
                widget.focus()
                return

    def set_value(self, field: str, value: str) -> None:
        """Fills one field by id (`epochs`, `batch-size`, `data`, ...)."""
        if field == "backend":
            self.query_one("#backend", Select).value = value
        else:
            self.query_one(f"#{field}", Input).value = value

    def read(self) -> Overrides | str:
        """The overrides in the form, or the message of the first field that does not parse."""
        numbers: dict[str, int | None] = {}
        for field, flag in _INTEGER_FIELDS.items():
            text = self.query_one(f"#{field}", Input).value.strip()
            if not text:
                numbers[field] = None
                continue
            problem = integer_problem(field, text)
            if problem:
                return problem
            numbers[field] = int(text)
        sets, error = parse_sets(self.query_one("#sets", Input).value)
        if error:
            return error
        backend = self.query_one("#backend", Select).value
        return Overrides(
            epochs=numbers["epochs"],
            batch_size=numbers["batch-size"],
            backend=str(backend) if backend is not Select.NULL else self.initial_backend,
            data=self.query_one("#data", Input).value.strip() or None,
            run_dir=self.query_one("#run-dir", Input).value.strip() or None,
            limit_train=numbers["limit-train"],
            limit_test=numbers["limit-test"],
            sets=sets,
        )

    def submit(self) -> None:
        """Parses the form and posts `Submitted`, or shows the parse error."""
        result = self.read()
        if isinstance(result, str):
            self.error = result
            return
        self.error = ""
        self.post_message(self.Submitted(result))

    @on(Button.Pressed, "#launch")
    @on(Input.Submitted)
    def _submit(self, event: Message) -> None:
        event.stop()
        self.submit()

    @on(Input.Changed)
    @on(Select.Changed)
    def _check_field(self, event: Message) -> None:
        """A new value clears the last error; a number field with letters says so at once."""
        field = getattr(event, "input", None)
        problem = integer_problem(field.id, event.value) if field is not None and field.id in _INTEGER_FIELDS else ""
        if field is not None and field.id in _INTEGER_FIELDS:
            field.set_class(bool(problem), "-invalid")
        self.error = problem
