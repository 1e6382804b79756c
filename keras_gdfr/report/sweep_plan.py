"""The plan `gdfr sweep` prints before it starts: the grid, its epochs, and device-hours.

`resolve_grid` turns `--table`s, recipes and `--variants` into recipes x variants
(one line naming any unknown table, variant or dataset); `check_recipes` loads each
recipe x variant as `gdfr train` would, so a bad one stops the sweep before anything
starts; `estimate` prices each cell from its network's MACs (keras_gdfr.counting) and
a throughput: a `gdfr bench --json` figure, or an assumed sustained TFLOP/s.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence

from keras_gdfr.report import tables
from keras_gdfr.report.sweep import SweepStep, recipe_stem

# An assumption, not a measurement: the sustained training throughput (multiply-adds x 2 x 3
# per image for forward + backward) of one current data-centre GPU on these networks. `--bench
# FILE` replaces it with a `gdfr bench --json` figure of the machine itself.
ASSUMED_TFLOPS = 20.0
# FLOPs per image and MAC: forward 2, forward + backward 6.
TRAIN_FLOPS_PER_MAC = 6
TEST_FLOPS_PER_MAC = 2


class PlanError(ValueError):
    """Bad sweep input; the message is one line naming it."""


def resolve_grid(table_names: Sequence[str], recipes: Sequence[str], variants: Sequence[str]) -> tuple[list[str], list[str]]:
    """(recipes, variants) of a sweep: the tables' variants then `--variants`, and the
    given recipes or else the tables' datasets (recipe names are dataset names)."""
    grids = []
    for name in table_names:
        try:
            grids.append(tables.paper_grid(name))
        except ValueError as error:
            raise PlanError(str(error)) from None
    all_variants = list(dict.fromkeys([v for grid in grids for v in grid.variants] + list(variants)))
    if not all_variants:
        raise PlanError("nothing to sweep: give --table NAME or --variants V1,V2")
    if recipes:
        return list(dict.fromkeys(recipes)), all_variants
    datasets = list(dict.fromkeys(d for grid in grids for d in grid.datasets))
    if not datasets:
        named = ", ".join(g.name for g in grids) or "--variants"
        raise PlanError(f"{named}: the paper names no datasets for it; give the RECIPE(s) to train on")
    return datasets, all_variants


@dataclasses.dataclass(frozen=True)
class CellCost:
    """What one cell trains: epochs, images, and its network's MACs per image."""

    epochs: int
    train_images: int
    test_images: int
    macs: int | None

    def flops(self) -> float | None:
        if self.macs is None:
            return None
        per_epoch = self.train_images * TRAIN_FLOPS_PER_MAC + self.test_images * TEST_FLOPS_PER_MAC
        return float(self.epochs * per_epoch * self.macs)


def check_recipes(recipes: Sequence[str], variants: Sequence[str], load_options: dict) -> dict:
    """Each recipe x variant as `gdfr train` would load it: {(recipe, variant): Recipe}.

    Raises:
        PlanError: the first recipe, dataset, variant or option that does not load.
    """
    from keras_gdfr.training.recipe import RecipeError, load_recipe

    loaded = {}
    for recipe in recipes:
        for variant in variants:
            try:
                loaded[recipe, variant] = load_recipe(recipe, variant=variant, **load_options)
            except RecipeError as error:
                raise PlanError(str(error)) from None
    return loaded


def count_macs(recipe) -> int | None:
    """MACs per image of the network a loaded recipe trains (None when it cannot be built)."""
    return _count(recipe.model.variant, json.dumps(recipe.model_overrides(), sort_keys=True),
                  recipe.spec.image_size, len(recipe.data.classes) or recipe.spec.num_classes)


_COUNTS: dict = {}


def _count(variant: str, overrides: str, image_size: int, num_classes: int) -> int | None:
    key = (variant, overrides, image_size, num_classes)
    if key not in _COUNTS:
        try:
            from keras_gdfr.counting import count_variant

            _COUNTS[key] = count_variant(variant, image_size, num_classes, **json.loads(overrides)).macs
        except Exception:  # an estimate must not stop the sweep; the plan says "?"
            _COUNTS[key] = None
    return _COUNTS[key]


def cell_cost(recipe, step: SweepStep, macs: int | None) -> CellCost:
    """The epochs still to train for a cell (all of them unless its run directory has some) and its images."""
    data, spec = recipe.data, recipe.spec
    epochs = recipe.train.epochs
    if step.action == "skip":
        epochs = 0
    elif step.action == "resume":
        from keras_gdfr.report.runs import RunDirError, load_run

        try:
            epochs = max(0, epochs - load_run(step.run_dir).epochs_trained)
        except RunDirError:
            pass
    return CellCost(epochs, data.limit_train or spec.train_size, data.limit_test or spec.test_size, macs)


def bench_tflops(path) -> float:
    """The training TFLOP/s of a `gdfr bench --json` output (the best line of the file).

    Raises:
        PlanError: when the file has no line with `train_tflops`.
    """
    try:
        lines = pathlib.Path(path).read_text().splitlines()
    except OSError as error:
        raise PlanError(f"--bench {path}: {error.strerror or error}") from None
    figures = []
    for line in lines:
        try:
            value = json.loads(line).get("train_tflops")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int | float) and value > 0:
            figures.append(float(value))
    if not figures:
        raise PlanError(f"--bench {path}: no `gdfr bench --json` line with train_tflops")
    return max(figures)


def _hours(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 3600:.2f}"


def _duration(seconds: float) -> str:
    """'12.3 h', or '4.5 min' below an hour."""
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def plan_text(steps: list[SweepStep], costs: dict[int, CellCost], tflops: float, tflops_source: str,
              slots: int | None, runs_dir) -> str:
    """The plan: one line per recipe x variant (its seeds together), then the totals.

    `slots`: runs at once on this machine (None: on a Ray cluster, as its resources allow).
    """
    groups: dict[tuple[str, str], list[SweepStep]] = {}
    for step in steps:
        groups.setdefault((recipe_stem(step.recipe), step.variant), []).append(step)
    rate = tflops * 1e12
    lines = [f"{'recipe':10s} {'variant':14s} {'runs':>4s} {'to do':>5s} {'epochs':>7s} {'G MACs':>7s} {'device-h':>9s}"]
    total_seconds, unknown, total_epochs = 0.0, False, 0
    for (recipe, variant), members in groups.items():
        cost = [costs[id(s)] for s in members]
        todo = [s for s in members if s.action != "skip"]
        epochs = sum(c.epochs for c in cost)
        flops = [c.flops() for c in cost if c.epochs]
        seconds = None if any(f is None for f in flops) else sum(flops) / rate
        unknown |= seconds is None
        total_seconds += seconds or 0.0
        total_epochs += epochs
        macs = cost[0].macs
        lines.append(f"{recipe:10s} {variant:14s} {len(members):4d} {len(todo):5d} {epochs:7d} "
                     f"{'?' if macs is None else f'{macs / 1e9:.3f}':>7s} {_hours(seconds):>9s}")
    todo = sum(1 for s in steps if s.action != "skip")
    if slots is None:
        at_once = "on Ray, as many at once as the cluster's resources allow"
    else:
        wall = total_seconds / max(1, min(slots, todo or 1))
        at_once = f"about {_duration(wall)} of wall time with {slots} at once"
    lines += [
        "",
        f"{len(steps)} runs ({todo} to train or resume, {len(steps) - todo} completed), {total_epochs:,} epochs, "
        f"into {runs_dir}",
        f"estimate: {total_seconds / 3600:,.1f} device-hours{' (+ cells of unknown cost)' if unknown else ''} at "
        f"{tflops:g} TFLOP/s sustained ({tflops_source}); {at_once}",
    ]
    return "\n".join(lines)
