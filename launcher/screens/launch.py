"""The launch screen: recipe, variant, overrides, Launch."""

from __future__ import annotations

import asyncio
import pathlib

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from launcher.launch import BACKENDS, Overrides
from launcher.model_info import ModelInfo
from launcher.recipes import RecipeEntry, list_recipe_entries, parse_sets, recipe_facts, validate
from launcher.screens.confirm import Confirm
from launcher.screens.run import RunScreen
from launcher.widgets.launch_form import LaunchForm
from launcher.widgets.recipe_details import RecipeDetails
from launcher.widgets.recipe_list import RecipeList
from launcher.widgets.variant_list import VariantList

INFO_DEBOUNCE_S = 0.3
"""Wait this long on a (recipe, variant) before starting `gdfr info` for it."""

FULL_RUN_EPOCHS = 20
"""Launching a recipe's own schedule of at least this many epochs on all its data asks first."""


def model_sets(text: str) -> tuple[str, ...]:
    """The form's `--set` items that change the model (and so its size): `model.*`."""
    sets, error = parse_sets(text)
    return () if error else tuple(item for item in sets if item.strip().startswith("model."))


class LaunchScreen(Screen):
    """Browse recipes, pick a variant, adjust the overrides and launch a run.

    Args:
        recipes_dir: the folder of recipe TOML files.
        backend: the backend selected at first.
    """

    BINDINGS = [
        Binding("ctrl+r", "launch", "Start run", id="launch.launch"),
    ]

    def __init__(self, recipes_dir: pathlib.Path, backend: str) -> None:
        super().__init__()
        self.recipes_dir = recipes_dir
        self.backend = backend
        self.recipe: RecipeEntry | None = None
        self.facts: dict = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="browser"):
            with Vertical(id="recipes-pane") as pane:
                pane.border_title = "Recipes"
                yield RecipeList(id="recipes")
                yield Static(id="recipes-empty")
            variants = VariantList(id="variants")
            variants.border_title = "Variant"
            yield variants
            details = RecipeDetails(id="details")
            details.border_title = "Recipe"
            yield details
        form = LaunchForm(backend=self.backend, id="form")
        form.border_title = "Overrides"
        yield form
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Launch"
        entries = list_recipe_entries(self.recipes_dir)
        self.query_one(RecipeList).recipes = entries
        empty = not entries
        self.set_class(empty, "-no-recipes")
        if empty:
            self.query_one("#recipes-empty", Static).update(
                f"No recipes in {self.recipes_dir}.\n\n"
                "A recipe is a TOML file (dataset, schedule, batch size) such as the "
                "repository's recipes/cifar10.toml. Put some there, or start "
                "gdfr-tui --recipes DIR."
            )
            self.query_one(VariantList).focus()
        else:
            self.query_one(RecipeList).focus()

    @property
    def variant(self) -> str:
        """The highlighted variant."""
        return self.query_one(VariantList).variant

    @on(RecipeList.Chosen)
    def _recipe_chosen(self, event: RecipeList.Chosen) -> None:
        self.recipe = event.recipe
        self.facts = recipe_facts(event.recipe.path)
        details = self.query_one(RecipeDetails)
        details.facts = self.facts
        details.summary = event.recipe.summary
        form = self.query_one(LaunchForm)
        form.defaults = self.facts
        if self.facts.get("backend") in BACKENDS:
            form.set_value("backend", self.facts["backend"])
        self._request_info()

    @on(VariantList.Chosen)
    def _variant_chosen(self, event: VariantList.Chosen) -> None:
        details = self.query_one(RecipeDetails)
        details.variant = event.name
        details.description = event.description
        self._request_info()

    @on(Input.Changed, "#sets")
    def _sets_changed(self) -> None:
        self._request_info()

    def _info_key(self) -> tuple[str, ...]:
        """(recipe, variant, *model sets): what the model's size depends on."""
        sets = model_sets(self.query_one("#sets", Input).value)
        return (str(self.recipe.path), self.variant, *sets)

    def _request_info(self) -> None:
        if self.recipe is None:
            return
        key = self._info_key()
        cached = self.app.info_cache.get(key)
        if cached is not None:
            self.query_one(RecipeDetails).info = cached
            return
        self.query_one(RecipeDetails).info = ModelInfo(pending=True)
        self._fetch_info(key)

    @work(exclusive=True, group="info")
    async def _fetch_info(self, key: tuple[str, ...]) -> None:
        await asyncio.sleep(INFO_DEBOUNCE_S)
        try:
            info = ModelInfo(data=await self.app.model_info(*key))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - shown as the error line
            info = ModelInfo(error=str(error) or type(error).__name__)
        self.app.info_cache[key] = info
        if self.recipe is not None and self._info_key() == key:
            self.query_one(RecipeDetails).info = info

    def action_launch(self) -> None:
        self.query_one(LaunchForm).submit()

    @on(LaunchForm.Submitted)
    def _submitted(self, event: LaunchForm.Submitted) -> None:
        if self.recipe is None:
            self.query_one(LaunchForm).error = f"No recipe to launch: the recipes folder {self.recipes_dir} is empty."
            return
        self._launch(self.recipe, self.variant, event.overrides)

    @work(exclusive=True, group="launch")
    async def _launch(self, recipe: RecipeEntry, variant: str, overrides: Overrides) -> None:
        form = self.query_one(LaunchForm)
        error = await asyncio.to_thread(validate, recipe.path, variant, overrides)
        if error:
            form.error = error
            return
        form.error = ""
        epochs = self.facts.get("epochs")
        full = overrides.epochs is None and overrides.limit_train is None and (epochs or 0) >= FULL_RUN_EPOCHS
        if full:
            question = Confirm(
                f"Start {recipe.name} / {variant} for its full {epochs} epochs?",
                "No epochs or limits are set: this is the recipe's whole schedule on all of its "
                "data (hours to days). Set Epochs and Limit train for a quick run.",
                yes="Start full run",
            )
            if not await self.app.push_screen_wait(question):
                return
        dataset = str(self.facts.get("dataset") or recipe.dataset or recipe.name)
        path = self.app.launch_run(recipe.path, variant, overrides, dataset)
        if path is not None:
            self.query_one("#variants").focus()  # coming back, keys reach the bindings again
            self.app.push_screen(RunScreen(path))

