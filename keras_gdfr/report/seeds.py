"""Runs that differ only by their seed, taken together: mean +- spread, and the paper's orderings.

Two runs are repeats of one experiment when their resolved recipes (recipe.json)
are equal but for `train.seed` and the `[run]` section (names, folders): the same
dataset, variant, model overrides, epochs, data and every other setting. A
`SeedGroup` holds such runs; its spread is the sample standard deviation of their
test accuracies. An ordering of two networks "holds beyond the spread" when their
mean +- std intervals do not overlap and the higher one is the one the paper has
higher. No keras code here.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

from keras_gdfr.report import tables
from keras_gdfr.report.runs import Run

# Recipe keys that do not make two runs different experiments.
IGNORED_SECTIONS = ("run",)
SEED = ("train", "seed")
PM = "±"
HOLDS, REVERSED, WITHIN = "holds beyond the spread", "reversed beyond the spread", "within the spread"
# With one scored seed a side the spread is unknown (GDFRNet-tiny's seeds spread 3.5 points on
# CIFAR-10 where its plain twin's spread 0.4): the direction is reported, never "beyond".
HIGHER_ONE_SEED, LOWER_ONE_SEED = "holds on one seed (spread unknown)", "reversed on one seed (spread unknown)"


def seed_of(run: Run):
    """The run's train.seed (from recipe.json), or None."""
    return (run.recipe.get(SEED[0]) or {}).get(SEED[1])


def group_key(run: Run) -> str:
    """Everything of the run's recipe but its seed and run names, as one comparable string."""
    recipe = copy.deepcopy(run.recipe)
    for section in IGNORED_SECTIONS:
        recipe.pop(section, None)
    if isinstance(recipe.get(SEED[0]), dict):
        recipe[SEED[0]].pop(SEED[1], None)
    recipe["trainer"] = run.trainer  # a control (bench/native_train.py) never pools with gdfr train's seeds
    return json.dumps(recipe, sort_keys=True, default=str)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def sample_std(values: list[float]) -> float | None:
    """The sample standard deviation (n - 1), or None for fewer than two values."""
    if len(values) < 2:
        return None
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@dataclasses.dataclass
class SeedGroup:
    """Runs of one experiment with different seeds, sorted by seed."""

    runs: list[Run]

    @property
    def first(self) -> Run:
        return self.runs[0]

    label = property(lambda self: self.first.label)
    variant = property(lambda self: self.first.variant)
    dataset = property(lambda self: self.first.dataset)
    overrides = property(lambda self: self.first.overrides)
    epochs = property(lambda self: self.first.epochs_planned)

    @property
    def scored(self) -> list[Run]:
        """The runs that have a test accuracy."""
        return [r for r in self.runs if r.test_accuracy is not None]

    @property
    def accuracies(self) -> list[float]:
        """Test accuracies in percent, of the scored runs."""
        return [100.0 * r.test_accuracy for r in self.scored]

    @property
    def mean(self) -> float | None:
        return _mean(self.accuracies) if self.accuracies else None

    @property
    def std(self) -> float | None:
        return sample_std(self.accuracies)

    def cell(self) -> str:
        """'41.23 ± 0.85 (n=3)', '41.23 (n=1)', or a dash."""
        if self.mean is None:
            return tables.DASH
        spread = f" {PM} {self.std:.2f}" if self.std is not None else ""
        return f"{self.mean:.2f}{spread} (n={len(self.accuracies)})"

    def seeds_cell(self) -> str:
        """'s0 41.20, s1 40.10, s2 running/crashed'."""
        parts = []
        for run in self.runs:
            value = tables.fmt_pct(run.test_accuracy) if run.test_accuracy is not None else run.status
            parts.append(f"s{seed_of(run)} {value}")
        return ", ".join(parts)


def group_runs(runs: list[Run]) -> list[SeedGroup]:
    """The runs grouped by `group_key`, in the order of each group's first run; seeds sorted."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    order = lambda r: (seed_of(r) is None, seed_of(r) if isinstance(seed_of(r), int) else 0, r.run_id)  # noqa: E731
    return [SeedGroup(sorted(members, key=order)) for members in groups.values()]


def ordering(lower: SeedGroup, higher: SeedGroup) -> str:
    """Whether `higher` (the paper's higher network) measures above `lower` beyond the spread.

    HOLDS (higher's mean - std above lower's mean + std), REVERSED (the other way
    round), or WITHIN. When either group has a single scored seed its spread is unknown:
    HIGHER_ONE_SEED or LOWER_ONE_SEED say only which way the means go.
    """
    lo_mean, hi_mean = lower.mean, higher.mean
    if lower.std is None or higher.std is None:
        return HIGHER_ONE_SEED if hi_mean > lo_mean else LOWER_ONE_SEED
    lo_std, hi_std = lower.std or 0.0, higher.std or 0.0
    if hi_mean - hi_std > lo_mean + lo_std:
        return HOLDS
    if lo_mean - lo_std > hi_mean + hi_std:
        return REVERSED
    return WITHIN


def grid_groups(grid: tables.PaperGrid, groups: list[SeedGroup]) -> dict[tuple[str, str], SeedGroup]:
    """(row variant, dataset) -> the group that stands for it: the same network on that dataset,
    with a test accuracy; of several, the one with the most scored seeds, then the most epochs."""
    cells: dict[tuple[str, str], SeedGroup] = {}
    for group in groups:
        if group.mean is None or group.first.trainer:  # a control checks the trainer; it is not the measurement
            continue
        names = tables.run_variants(group.first)
        for variant in grid.variants:
            if variant not in names:
                continue
            key = (variant, group.dataset)
            best = cells.get(key)
            rank = lambda g: (len(g.accuracies), g.epochs or 0)  # noqa: E731
            if best is None or rank(group) > rank(best):
                cells[key] = group
    return cells


def seeds_table(groups: list[SeedGroup]) -> str:
    """Markdown: one row per group of repeats, each seed's accuracy and mean +- std beside the paper."""
    headers = ["network", "dataset", "epochs", "each seed: test acc (%)", f"mean {PM} std (%)", "paper (%)",
               "difference (points)"]
    rows = []
    for group in groups:
        paper, _ = tables.paper_accuracy(group.variant, group.dataset, group.overrides)
        diff = tables.DASH if paper is None or group.mean is None else f"{round(group.mean, 2) - paper:+.2f}"
        rows.append([group.label, tables.dataset_label(group.dataset), str(group.epochs or "?"), group.seeds_cell(),
                     group.cell(), tables.fmt_paper(paper), diff])
    return tables.markdown_table(headers, rows)


def grid_table(grid: tables.PaperGrid, cells: dict[tuple[str, str], SeedGroup]) -> str:
    """Markdown: each measured row of the grid, mean +- std over seeds beside the paper's cell."""
    headers = ["variant", "dataset", f"measured test acc (%), mean {PM} std", "seeds", "epochs", "paper (%)",
               "difference (points)"]
    rows = []
    for variant in grid.variants:
        for dataset in sorted({d for v, d in cells if v == variant}, key=_dataset_order(grid)):
            group = cells[variant, dataset]
            paper = grid.paper_value(variant, dataset)
            diff = tables.DASH if paper is None else f"{round(group.mean, 2) - paper:+.2f}"
            rows.append([variant, tables.dataset_label(dataset), group.cell(), group.seeds_cell(),
                         str(group.epochs or "?"), tables.fmt_paper(paper), diff])
    return tables.markdown_table(headers, rows)


def _dataset_order(grid: tables.PaperGrid):
    order = {d: i for i, d in enumerate(grid.datasets)}
    return lambda d: (order.get(d, len(order)), d)


def orderings(grid: tables.PaperGrid, cells: dict[tuple[str, str], SeedGroup]) -> list[str]:
    """One line per pair of measured rows on a dataset whose paper cells differ: the paper's
    order, the measured means +- std, and whether the order holds beyond the spread."""
    lines = []
    datasets = sorted({d for _, d in cells}, key=_dataset_order(grid))
    for dataset in datasets:
        measured = [v for v in grid.variants if (v, dataset) in cells]
        for i, a in enumerate(measured):
            for b in measured[i + 1:]:
                pa, pb = grid.paper_value(a, dataset), grid.paper_value(b, dataset)
                if pa is None or pb is None or pa == pb:
                    continue
                (lo, p_lo), (hi, p_hi) = sorted(((a, pa), (b, pb)), key=lambda item: item[1])
                verdict = ordering(cells[lo, dataset], cells[hi, dataset])
                lines.append(
                    f"{tables.dataset_label(dataset)}: {hi} > {lo} in the paper ({p_hi:.2f} > {p_lo:.2f}); measured "
                    f"{cells[hi, dataset].cell()} vs {cells[lo, dataset].cell()}: **{verdict}**"
                )
    return lines
