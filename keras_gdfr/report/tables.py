"""The paper's numbers (paper_results.json) and the report's Markdown tables.

`paper_results()` loads the paper's Tables 4-9 once; `paper_accuracy` finds the
paper's number for a variant on a dataset, treating variants with the same
architecture (e.g. `gdfrnet`, `net5`, `frm-c`, `fgcm-a`, `branch-c`) as one
network. The `*_table` functions render Markdown from runs (`report.runs.Run`)
and the paper; they print measured accuracies as percentages with two decimals,
exactly as the paper does. No keras code here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib

from keras_gdfr.report.runs import PAPER_EPOCHS, Run, describe_data

PAPER_RESULTS_PATH = pathlib.Path(__file__).with_name("paper_results.json")
# Where a variant's paper accuracy is looked up first: the ablation ladder, then the ablations.
ACCURACY_TABLES = ("table9", "table4", "table5", "table6", "table7")
# Table 8's models counted here, beside the variants of the runs.
TABLE8_VARIANTS = ("gdfrnet", "gdfrnet-dense", "net2")
DASH = "—"


@functools.lru_cache(maxsize=1)
def paper_results() -> dict:
    """The paper's reported numbers (keras_gdfr/report/paper_results.json)."""
    with open(PAPER_RESULTS_PATH, encoding="utf-8") as f:
        return json.load(f)


def dataset_label(dataset: str) -> str:
    """'CIFAR-10' for 'cifar10'; unknown names are returned as given."""
    return paper_results()["datasets"].get(dataset, dataset)


@functools.lru_cache(maxsize=1)
def _variant_configs() -> dict[str, dict]:
    """Every named variant's full configuration, lists as tuples."""
    from keras_gdfr.variants import VARIANTS, variant_config

    return {name: _normalised(variant_config(name)) for name in VARIANTS}


def _normalised(config: dict) -> dict:
    """A configuration with JSON lists turned back into tuples, for comparison."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def network_variants(variant: str, overrides: dict | None = None) -> frozenset[str]:
    """Variant names that build the same network as `variant` with `overrides`.

    Two variants are the same network when their configurations are equal, e.g.
    `gdfrnet` = `net5` = `frm-c` = `fgcm-a` = `branch-c`, and `net3` = `branch-a`.
    An unknown variant, or overrides that leave every named configuration (a
    narrowed test model), give only the name itself, or nothing.
    """
    configs = _variant_configs()
    if variant not in configs:
        return frozenset({variant})
    config = dict(configs[variant])
    config.update(_normalised(overrides or {}))
    return frozenset(name for name, other in configs.items() if other == config)


def equivalent_variants(variant: str) -> frozenset[str]:
    """Variant names that build the same network as `variant` (itself included)."""
    return network_variants(variant)


def run_variants(run: Run) -> frozenset[str]:
    """Variant names that build the network a run trained (its overrides included)."""
    return network_variants(run.variant, run.overrides)


def paper_accuracy(variant: str, dataset: str, overrides: dict | None = None) -> tuple[float | None, str | None]:
    """The paper's accuracy (%) for a variant (with overrides) on a dataset, and where it is printed.

    Returns:
        (value, "Table 9 net5"), or (None, None) when the paper has no such number.
    """
    names = network_variants(variant, overrides)
    tables = paper_results()["tables"]
    for key in ACCURACY_TABLES:
        table = tables[key]
        for row_key, row in table["rows"].items():
            value = row["values"].get(dataset)
            if row_key in names and value is not None:
                return value, f"{table_name(key)} {row['label']}"
    return None, None


def table_name(key: str) -> str:
    """'Table 9' for 'table9'."""
    return "Table " + key.removeprefix("table")


def fmt_pct(fraction: float | None) -> str:
    """A fraction as a percentage with two decimals (0.4123 -> '41.23'), or a dash."""
    return DASH if fraction is None else f"{100.0 * fraction:.2f}"


def fmt_paper(value: float | None) -> str:
    """A paper percentage as printed with two decimals (89.6 -> '89.60'), or a dash."""
    return DASH if value is None else f"{value:.2f}"


def fmt_diff(fraction: float | None, paper: float | None) -> str:
    """Measured minus paper in percentage points, signed ('-55.65'), or a dash."""
    if fraction is None or paper is None:
        return DASH
    return f"{round(100.0 * fraction, 2) - paper:+.2f}"


def fmt_count(value, scale: float, digits: int = 2) -> str:
    """A count in millions or billions ('21.28'), or a dash when unknown.

    A small nonzero count keeps two significant digits instead of rounding to zero
    (1,586,432 MACs in G: '0.0016', not '0.00').
    """
    if value is None:
        return DASH
    scaled = value / scale
    if 0 < abs(scaled) < 10.0 ** -(digits - 1):
        digits = max(digits, 1 - math.floor(math.log10(abs(scaled))))
    return f"{scaled:.{digits}f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    escape = lambda cell: str(cell).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return "\n".join(lines)


def _epochs(run: Run) -> str:
    planned = run.epochs_planned
    trained = f"{run.epochs_trained}" + (f" of {planned}" if planned is not None else "")
    return f"{trained} (paper {PAPER_EPOCHS})"


def runs_table(runs: list[Run]) -> str:
    """One line per run: what it is, how far it got, what it scored."""
    headers = [
        "run", "variant", "dataset", "backend", "status", "epochs", "best val acc (%)",
        "test acc (%)", "params (M)", "MACs (G)", "data",
    ]
    rows = [
        [
            run.run_id, run.label, dataset_label(run.dataset), run.backend, run.status, _epochs(run),
            fmt_pct(run.best_val_accuracy), fmt_pct(run.test_accuracy),
            fmt_count(run.params, 1e6), fmt_count(run.macs, 1e9, 3), describe_data(run),
        ]
        for run in runs
    ]
    return markdown_table(headers, rows)


def comparison_table(runs: list[Run]) -> str:
    """Each run's test accuracy beside the paper's number for the same network and dataset."""
    headers = [
        "variant", "dataset", "measured test acc (%)", "paper (%)", "paper source",
        "difference (points)", "epochs trained", "data",
    ]
    rows = []
    for run in runs:
        paper, source = paper_accuracy(run.variant, run.dataset, run.overrides)
        missing = "not in the paper" + (" (model overrides)" if run.overrides and not run_variants(run) else "")
        rows.append([
            run.label, dataset_label(run.dataset), fmt_pct(run.test_accuracy), fmt_paper(paper),
            source or missing, fmt_diff(run.test_accuracy, paper), _epochs(run), describe_data(run),
        ])
    return markdown_table(headers, rows)


def _best_trained(runs: list[Run]) -> Run:
    """Of several runs of one network on one dataset, the one trained longest (then latest)."""
    return max(runs, key=lambda r: (r.epochs_trained, r.run_start.get("time", 0.0)))


def measured_accuracy(runs: list[Run], variant: str, dataset: str) -> Run | None:
    """The run that stands for `variant` on `dataset` (the same network), or None."""
    matches = [
        r for r in runs if r.dataset == dataset and variant in run_variants(r) and r.test_accuracy is not None
    ]
    return _best_trained(matches) if matches else None


def paper_table(key: str, runs: list[Run]) -> str:
    """A paper accuracy table, with a 'measured' column beside each dataset that has runs.

    A measured cell holds the test accuracy of the longest-trained run of that row's
    network, with its epochs: '41.23 (3 ep)'.
    """
    table = paper_results()["tables"][key]
    datasets = table["datasets"]
    measured_sets = {
        d for d in datasets for row_key in table["rows"] if measured_accuracy(runs, row_key, d)
    }
    headers = ["model", "variant"]
    for d in datasets:
        headers.append(f"{dataset_label(d)} paper")
        if d in measured_sets:
            headers.append(f"{dataset_label(d)} measured")
    rows = []
    for row_key, row in table["rows"].items():
        is_variant = _is_known_variant(row_key)
        cells = [row["label"], row_key if is_variant else DASH]
        for d in datasets:
            cells.append(fmt_paper(row["values"].get(d)))
            if d in measured_sets:
                run = measured_accuracy(runs, row_key, d) if is_variant else None
                cells.append(f"{fmt_pct(run.test_accuracy)} ({run.epochs_trained} ep)" if run else "")
        rows.append(cells)
    return markdown_table(headers, rows)


def _is_known_variant(name: str) -> bool:
    return name in _variant_configs()


def complexity_table(counts: dict[str, dict]) -> str:
    """Parameters and MACs of each counted variant beside the paper's Table 8.

    Args:
        counts: variant (or run label) -> {"params", "macs", "macs_tconv", "source"}; any value may be
            None (unknown). `macs` are true multiply-adds; `macs_tconv` count every
            transposed conv over its output pixels (4x at stride 2), the convention
            closest to the paper's 2.56 G.
    """
    table8 = paper_results()["tables"]["table8"]["rows"]
    headers = [
        "model", "variant", "paper params (M)", "params (M)", "paper MACs (G)", "true MACs (G)",
        "MACs, tconv output-pixel convention (G)", "counted by",
    ]
    rows = []
    listed = set()
    for row_key, row in table8.items():
        count = counts.get(row_key, {})
        listed.add(row_key)
        rows.append([
            row["label"], row_key if _is_known_variant(row_key) else DASH, fmt_paper(row["params_m"]),
            fmt_count(count.get("params"), 1e6), fmt_paper(row["macs_g"]), fmt_count(count.get("macs"), 1e9),
            fmt_count(count.get("macs_tconv"), 1e9), count.get("source", DASH) if count else DASH,
        ])
    for variant, count in counts.items():
        if variant in listed:
            continue
        rows.append([
            DASH, variant, DASH, fmt_count(count.get("params"), 1e6), DASH, fmt_count(count.get("macs"), 1e9),
            fmt_count(count.get("macs_tconv"), 1e9), count.get("source", DASH),
        ])
    return markdown_table(headers, rows)


def unnumbered_results() -> list[str]:
    """One line for each table or figure of the paper that has no numbers in its text."""
    return list(paper_results()["without_numbers"].values())



# The paper's grids by name, for `gdfr sweep --table` and the report's seed tables --------

LADDER_PREFIX = "tiny-"
"""`--table 9-tiny`: each row's variant at tiny's widths (tiny-net2 ... tiny-net5), where one exists."""


@dataclasses.dataclass(frozen=True)
class PaperGrid:
    """One of the paper's grids of networks x datasets.

    Attributes:
        name: as `gdfr sweep --table` takes it ("9", "9-tiny", "3").
        caption: the paper's caption, or a description.
        variants: the grid's variants (known names only), in the paper's row order.
        datasets: the paper's datasets for it (empty where the paper gives no numbers).
        paper_rows: variant -> the key of its row in paper_results.json (for tiny-netK, netK's row).
        key: the paper_results.json table key ("table9"), or None.
    """

    name: str
    caption: str
    variants: tuple[str, ...]
    datasets: tuple[str, ...]
    paper_rows: dict
    key: str | None = None

    def paper_value(self, variant: str, dataset: str) -> float | None:
        """The paper's accuracy (%) for the row a variant stands for, on a dataset."""
        row = self.paper_rows.get(variant)
        if row is None or self.key is None:
            return None
        return paper_results()["tables"][self.key]["rows"][row]["values"].get(dataset)


def paper_grid_names() -> list[str]:
    """Every name `paper_grid` takes: the accuracy tables, their -tiny ladders, and the grids without numbers."""
    from keras_gdfr.variants import GRIDS_WITHOUT_NUMBERS

    names = [key.removeprefix("table") for key in ACCURACY_TABLES]
    tiny = [f"{name}-tiny" for name in names if _ladder_rows(f"table{name}")]
    return sorted(names + tiny + list(GRIDS_WITHOUT_NUMBERS), key=lambda n: (n[0].isalpha(), n))


def _ladder_rows(key: str) -> dict[str, str]:
    """tiny-<row> -> row, for the rows of a paper table that have a tiny twin."""
    rows = paper_results()["tables"][key]["rows"]
    return {LADDER_PREFIX + row: row for row in rows if _is_known_variant(LADDER_PREFIX + row)}


def paper_grid(name: str) -> PaperGrid:
    """The grid called `name` ("9", "table9", "Table 9", "9-tiny", "3", "fig8").

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    from keras_gdfr.variants import GRIDS_WITHOUT_NUMBERS

    short = name.strip().lower().replace(" ", "").removeprefix("table")
    tiny = short.endswith("-tiny")
    base = short.removesuffix("-tiny")
    key = f"table{base}"
    if key in ACCURACY_TABLES:
        table = paper_results()["tables"][key]
        rows = _ladder_rows(key) if tiny else {row: row for row in table["rows"] if _is_known_variant(row)}
        if rows:
            caption = table["caption"] + (" at tiny's widths (tiny-netK stands for the paper's netK)" if tiny else "")
            return PaperGrid(short, caption, tuple(rows), tuple(table["datasets"]), rows, key)
    if short in GRIDS_WITHOUT_NUMBERS:
        note = paper_results()["without_numbers"].get(key if base.isdigit() else short, "")
        return PaperGrid(short, note, GRIDS_WITHOUT_NUMBERS[short], (), {})
    raise ValueError(f"unknown table {name!r} (known: {', '.join(paper_grid_names())})")
