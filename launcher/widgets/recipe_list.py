"""The list of recipes on the launch screen."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from launcher.recipes import RecipeEntry


class RecipeList(OptionList):
    """The recipes of the recipes folder; highlighting one posts `RecipeList.Chosen`."""

    @dataclass
    class Chosen(Message):
        """A recipe was highlighted."""

        recipe: RecipeEntry

    recipes: reactive[list[RecipeEntry]] = reactive(list, always_update=True)
    """The recipes shown, in order."""

    def watch_recipes(self, recipes: list[RecipeEntry]) -> None:
        self.clear_options()
        self.add_options(
            Option(
                Text.assemble((entry.name, "bold"), *(("  ", (entry.dataset, "dim")) if entry.dataset != entry.name else ())),
                id=str(index),
            )
            for index, entry in enumerate(recipes)
        )
        if recipes:
            self.highlighted = 0

    @on(OptionList.OptionHighlighted)
    def _announce(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_id is not None:
            self.post_message(self.Chosen(self.recipes[int(event.option_id)]))
