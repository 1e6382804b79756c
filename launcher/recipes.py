"""Recipes for the launcher: listing, the facts to show, validating the form's overrides.

The form refuses what `gdfr train` refuses, with its messages: the options are
parsed by the real click command (`keras_gdfr.training.commands.train`), and
the recipe is checked by `keras_gdfr.training.recipe.load_recipe`. Both modules
import no Keras (its imports live inside the command bodies;
`tests/test_dependencies.py` imports the whole launcher in a fresh interpreter and
checks). A recipe that `load_recipe` refuses is still read as plain TOML for display.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
from typing import Any, Iterable

import click

from keras_gdfr.data.specs import DATASETS
from keras_gdfr.training import recipe as recipe_module
from keras_gdfr.training.commands import train as train_cli
from launcher.launch import BACKENDS, Overrides, train_command

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True)
class RecipeEntry:
    """One recipe of the recipes folder."""

    name: str
    path: pathlib.Path
    dataset: str = ""
    summary: str = ""


def default_recipes_dir() -> pathlib.Path:
    """The first of `recipe_folders()` (`./recipes`, the repository's, the packaged ones)."""
    folders = recipe_module.recipe_folders()
    return folders[0] if folders else pathlib.Path.cwd() / "recipes"


def list_recipe_entries(folder: str | os.PathLike) -> list[RecipeEntry]:
    """The recipes of a folder, by name. A missing folder has none."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    try:
        return [  # the file's own first comment says more than the generated summary
            RecipeEntry(str(name), pathlib.Path(path), str(dataset or ""),
                        _first_comment(pathlib.Path(path)) or str(summary or ""))
            for name, path, dataset, summary in recipe_module.list_recipes(folder)
        ]
    except Exception:  # noqa: BLE001 - a broken file: fall back to reading TOML
        pass
    entries = []
    for path in sorted(folder.glob("*.toml")):
        document = _read_toml(path)
        dataset = find_key(document, ("dataset",)) if document else None
        if dataset is None and document:
            dataset = (document.get("data") or {}).get("name") if isinstance(document.get("data"), dict) else None
        summary = ""
        if document:
            summary = str(find_key(document, ("description", "summary")) or "")
        if not summary:
            summary = _first_comment(path)
        entries.append(RecipeEntry(path.stem, path, str(dataset or ""), summary))
    return entries


_FACT_KEYS: dict[str, tuple[str, ...]] = {
    "dataset": ("dataset",),
    "epochs": ("epochs",),
    "batch_size": ("batch_size",),
    "lr": ("lr", "learning_rate"),
    "milestones": ("milestones",),
    "gamma": ("gamma", "lr_gamma", "lr_decay"),
    "variant": ("variant",),
    "image_size": ("image_size",),
    "num_classes": ("num_classes",),
    "backend": ("backend",),
}


def recipe_facts(path: str | os.PathLike, variant: str | None = None) -> dict[str, Any]:
    """What the launch screen shows of a recipe: dataset, schedule, batch size.

    Returns:
        A dict with the keys of `_FACT_KEYS` (None where unknown), and `error`
        (a one-line message) when the recipe cannot be read.
    """
    facts: dict[str, Any] = {key: None for key in _FACT_KEYS}
    facts["error"] = None
    document: Any = None
    try:
        document = plain(recipe_module.load_recipe(str(path), variant=variant))
    except Exception as error:  # noqa: BLE001 - RecipeError or a bug: shown, not raised
        facts["error"] = str(error)
    if document is None:
        document = _read_toml(pathlib.Path(path))
        if document is None and facts["error"] is None:
            facts["error"] = f"{path}: cannot be read as TOML"
    if isinstance(document, dict):
        for fact, keys in _FACT_KEYS.items():
            facts[fact] = find_key(document, keys)
        if facts["dataset"] is None and isinstance(document.get("data"), dict):
            facts["dataset"] = document["data"].get("name")
    spec = DATASETS.get(str(facts["dataset"]))
    if spec is not None:
        facts["image_size"] = facts["image_size"] or spec.image_size
        facts["num_classes"] = facts["num_classes"] or spec.num_classes
        facts["batch_size"] = facts["batch_size"] or spec.batch_size
    return facts


def parse_sets(text: str) -> tuple[tuple[str, ...], str | None]:
    """The form's `--set` field (`a.b=1 c.d="x y"`, shell quoting) as items, or an error message."""
    try:
        return tuple(shlex.split(text)), None
    except ValueError as error:
        return (), f"--set: {error}"


def validate(
    recipe: str | os.PathLike,
    variant: str | None,
    overrides: Overrides,
) -> str | None:
    """Checks a launch the way `gdfr train` would; returns its error message or None.

    In order: the `train` command's own option parsing (click's messages), the
    data path, the run directory, then the recipe (`load_recipe`'s `RecipeError`).
    What cannot be checked here surfaces as the trainer's stderr.
    """
    if overrides.backend not in BACKENDS:
        return f"KERAS_BACKEND must be one of {', '.join(BACKENDS)}, got {overrides.backend!r}"
    message = cli_check(train_command(recipe, variant, overrides, overrides.run_dir, trainer=())[1:])
    if message:
        return message
    if overrides.data and not os.path.exists(overrides.data):
        return f"--data {overrides.data}: no such file or folder"
    run_dir = overrides.run_dir
    if run_dir and os.path.isdir(run_dir) and os.listdir(run_dir):
        return f"{run_dir}: run directory already exists and is not empty; pass --resume {run_dir} to continue it"
    sets = list(overrides.sets) + ([f"train.batch_size={overrides.batch_size}"] if overrides.batch_size else [])
    try:
        recipe_module.load_recipe(
            str(recipe), variant=variant, sets=sets, epochs=overrides.epochs, data=overrides.data or None,
            limit_train=overrides.limit_train, limit_test=overrides.limit_test,
        )
    except Exception as error:  # noqa: BLE001 - RecipeError: the CLI's own message
        text = str(error).strip()
        return text.splitlines()[0] if text else type(error).__name__
    return None


def cli_check(arguments: list[str]) -> str | None:
    """Parses `gdfr train` arguments with the real click command; its message on failure."""
    try:
        train_cli.make_context("train", list(arguments))
    except click.ClickException as error:
        return error.format_message()
    return None


def plain(value: Any) -> Any:
    """A recipe object as nested dicts: mappings, dataclasses, or `to_dict()`/`as_dict()`."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    for method in ("to_dict", "as_dict", "dict"):
        if callable(getattr(value, method, None)):
            try:
                return plain(getattr(value, method)())
            except TypeError:
                continue
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def find_key(document: Any, keys: Iterable[str]) -> Any:
    """The value of the shallowest key named one of `keys` in nested dicts (first key wins)."""
    keys = tuple(keys)
    level = [document]
    while level:
        for key in keys:
            for node in level:
                if isinstance(node, dict) and key in node and not isinstance(node[key], dict):
                    return node[key]
        level = [v for node in level if isinstance(node, dict) for v in node.values() if isinstance(v, dict)]
    return None


def _read_toml(path: pathlib.Path) -> dict | None:
    if tomllib is None:
        return None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, ValueError):
        return None


def _first_comment(path: pathlib.Path) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line.startswith("#"):
                    return line.lstrip("#").strip()
                if line:
                    break
    except OSError:
        pass
    return ""
