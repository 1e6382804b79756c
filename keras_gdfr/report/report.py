"""`gdfr report`: a Markdown report of run directories beside the paper's results.

`write_report(paths, out_dir)` reads the runs (docs/run-directory.md), writes
`report.md` and the PNGs it embeds under `out_dir/figures/`:
- the runs and their measured test accuracy beside the paper's Tables 4-7 and 9,
  with the difference, the epochs actually trained (vs 200) and the data used;
- parameters and MACs (true MACs and the transposed-conv output-pixel
  convention) beside Table 8;
- per run: training curves (events.jsonl), the confusion matrix (Fig. 14 style)
  and one-vs-rest ROC curves with AUC (Fig. 15 style) from eval.json.
"""

from __future__ import annotations

import datetime
import pathlib
import re

from keras_gdfr.report import figures, seeds, tables
from keras_gdfr.report.runs import Run, find_runs

# Table 8 is read as 32x32 CIFAR-10 counts (see paper_results.json).
TABLE8_IMAGE_SIZE = 32
TABLE8_NUM_CLASSES = 10


def _safe_name(text: str) -> str:
    """A file-name-safe version of a run id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def _counter():
    """`keras_gdfr.counting.count_variant`, or None while that module does not exist."""
    try:
        from keras_gdfr.counting import count_variant
    except ImportError:
        return None
    return count_variant


def _count_one(count_variant, variant: str, overrides: dict) -> dict:
    result = count_variant(variant, TABLE8_IMAGE_SIZE, TABLE8_NUM_CLASSES, **overrides)
    return {
        "params": getattr(result, "params", None),
        "macs": getattr(result, "macs", None),
        "macs_tconv": getattr(result, "macs_tconv_output_convention", None),
        "source": f"keras_gdfr.counting ({TABLE8_IMAGE_SIZE}x{TABLE8_IMAGE_SIZE}, {TABLE8_NUM_CLASSES} classes)",
    }


def _count_from_run(run: Run) -> dict:
    return {
        "params": run.params,
        "macs": run.macs,
        "macs_tconv": None,
        "source": f"run_start of {run.run_id} ({tables.dataset_label(run.dataset)})",
    }


def complexity_counts(runs: list[Run], count: bool = True) -> dict[str, dict]:
    """Parameters and MACs of Table 8's variants and of every run's network, by label.

    With `count` and `keras_gdfr.counting` available, each network (variant plus
    the run's model overrides) is built and counted at 32x32 with 10 classes
    (Table 8's setting); otherwise (or when a count fails) the numbers come from
    a run's `run_start` event, where present.
    """
    count_variant = _counter() if count else None
    networks = {name: (name, {}) for name in tables.TABLE8_VARIANTS}
    for run in runs:
        networks.setdefault(run.label, (run.variant, run.overrides))
    counts: dict[str, dict] = {}
    for label, (variant, overrides) in networks.items():
        if count_variant is not None:
            try:
                counts[label] = _count_one(count_variant, variant, overrides)
                continue
            except Exception as error:  # a variant that fails to build must not sink the report
                counts[label] = {"source": f"count failed: {type(error).__name__}: {error}"}
        run = next((r for r in runs if r.label == label and r.params is not None), None)
        if run is not None:
            counts[label] = _count_from_run(run)
    return counts


def _section_header(runs: list[Run], skipped: list[str]) -> list[str]:
    paper = tables.paper_results()["paper"]
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        "# GDFRNet: measured runs beside the paper",
        "",
        f"Generated {now} from {len(runs)} run director{'y' if len(runs) == 1 else 'ies'}. "
        f"Paper: {paper['title']}, {paper['journal']}, DOI {paper['doi']}.",
        "",
        "Accuracies are test-set top-1 accuracy in percent. The paper trains every network "
        f"for {tables.PAPER_EPOCHS} epochs on the full datasets; a run trained for fewer epochs "
        "or on a subset is not expected to reach its number.",
    ]
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- {message}" for message in skipped]
    return lines


def _section_runs(runs: list[Run], out_dir: pathlib.Path) -> list[str]:
    lines = ["", "## Runs", "", tables.runs_table(runs)]
    entries = []
    for run in runs:
        paper, _ = tables.paper_accuracy(run.variant, run.dataset, run.overrides)
        measured = None if run.test_accuracy is None else 100.0 * run.test_accuracy
        entries.append((f"{run.label} / {tables.dataset_label(run.dataset)}", measured, paper))
    if entries:
        figures.plot_accuracy_vs_paper(entries, out_dir / "figures" / "accuracy-vs-paper.png")
        lines += ["", "![measured and paper test accuracy](figures/accuracy-vs-paper.png)"]
    return lines


def _section_comparison(runs: list[Run]) -> list[str]:
    lines = [
        "", "## Test accuracy beside the paper", "",
        "The paper's number is that of the same network (variants with equal configurations, "
        "e.g. gdfrnet = net5 = frm-c = fgcm-a = branch-c, count as one) on the same dataset. "
        "Difference = measured - paper, in percentage points.",
        "", tables.comparison_table(runs),
    ]
    for key in tables.ACCURACY_TABLES:
        table = tables.paper_results()["tables"][key]
        lines += ["", f"### {table['caption']} ({table['unit']})", "", tables.paper_table(key, runs), ""]
        lines += [f"- {note}" for note in table.get("notes", [])]
    lines += ["", "### Results the paper gives without numbers", ""]
    lines += [f"- {text}" for text in tables.unnumbered_results()]
    return lines


def _section_seeds(runs: list[Run], out_dir: pathlib.Path) -> list[str]:
    """Repeats that differ only by seed: mean +- std, per paper table with its orderings, and all seeds' curves."""
    groups = seeds.group_runs(runs)
    repeated = [g for g in groups if len(g.runs) > 1]
    if not repeated:
        return []
    lines = [
        "", "## Over seeds", "",
        "Runs whose recipes are equal but for train.seed (and the run's name) are repeats of one experiment. "
        f"Mean {seeds.PM} std are over the seeds that have a test accuracy (std: the sample standard deviation). "
        f"An ordering of two networks holds beyond the spread when their mean {seeds.PM} std intervals do not "
        "overlap, the paper's higher network above; with a single seed on either side only the direction is "
        "given (the spread is unknown).",
        "", seeds.seeds_table(repeated),
    ]
    for name in tables.paper_grid_names():
        grid = tables.paper_grid(name)
        cells = seeds.grid_groups(grid, groups)
        if grid.key is None or not any(len(g.runs) > 1 for g in cells.values()):
            continue
        lines += ["", f"### {grid.caption}, over seeds", "", seeds.grid_table(grid, cells)]
        order = seeds.orderings(grid, cells)
        if order:
            lines += ["", "The paper's orderings:", ""] + [f"- {line}" for line in order]
    for group, stem in zip(repeated, _figure_stems([g.first for g in repeated])):
        title = f"{group.label}, {tables.dataset_label(group.dataset)}: {len(group.runs)} seeds"
        path = figures.plot_seed_curves([(f"seed {seeds.seed_of(r)}", r.epoch_ends) for r in group.runs],
                                        out_dir / "figures" / f"{stem}-seeds.png", title)
        lines += ["", f"![{title}](figures/{path.name})"]
    return lines


def _section_complexity(counts: dict[str, dict]) -> list[str]:
    table8 = tables.paper_results()["tables"]["table8"]
    lines = [
        "", f"## Parameters and MACs beside {table8['caption']}", "",
        "True MACs count each multiply-add once. The transposed-conv output-pixel convention "
        "(used by some FLOP counters) counts a stride-2 transposed conv over its output pixels, "
        "4x its true MACs; only under it (and with FRM's dense down-sampling conv, variant gdfrnet-dense) "
        "does the count approach the paper's 2.56 G for GDFRNet. "
        f"Counted at {TABLE8_IMAGE_SIZE}x{TABLE8_IMAGE_SIZE} with {TABLE8_NUM_CLASSES} classes. "
        "MACs from a run_start event are as the training process counted them.",
        "", tables.complexity_table(counts), "",
    ]
    return lines + [f"- {note}" for note in table8["notes"]]


def _section_run_figures(run: Run, out_dir: pathlib.Path, stem: str) -> list[str]:
    lines = ["", f"## Run {run.run_id}", "", f"`{run.path}`: {run.label} on {tables.dataset_label(run.dataset)}, "
             f"{run.status}, {run.epochs_trained} epoch(s)."]
    curves = figures.plot_training_curves(run.epoch_ends, out_dir / "figures" / f"{stem}-curves.png", run.run_id)
    lines += ["", f"![training curves of {run.run_id}](figures/{curves.name})"]
    evaluation = run.evaluation
    if not evaluation:
        return lines + ["", "No eval.json: run `gdfr eval` on this directory for the confusion matrix and ROC."]
    title = f"{run.label}, {tables.dataset_label(run.dataset)}"
    if evaluation.get("confusion_matrix"):
        cm = figures.plot_confusion_matrix(
            evaluation["confusion_matrix"], evaluation.get("class_names", []),
            out_dir / "figures" / f"{stem}-confusion.png", title,
        )
        lines += ["", f"![confusion matrix of {run.run_id}](figures/{cm.name})"]
    if evaluation.get("roc"):
        roc = figures.plot_roc_curves(
            evaluation["roc"], out_dir / "figures" / f"{stem}-roc.png", title, evaluation.get("macro_auc")
        )
        lines += ["", f"![ROC curves of {run.run_id}](figures/{roc.name})"]
    source = evaluation.get("source") or "unknown split"
    lines += ["", f"Evaluated on {_fmt_int(evaluation.get('num_examples'))} images ({source}): accuracy "
              f"{tables.fmt_pct(evaluation.get('accuracy'))} %, macro AUC {_fmt_auc(evaluation.get('macro_auc'))}."]
    return lines


def _fmt_int(value) -> str:
    return "?" if value is None else f"{value:,}"


def _fmt_auc(value) -> str:
    return tables.DASH if value is None else f"{value:.4f}"


def _figure_stems(runs: list[Run]) -> list[str]:
    """A distinct file-name stem per run."""
    stems, seen = [], {}
    for run in runs:
        stem = _safe_name(run.run_id)
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def build_report(runs: list[Run], out_dir, skipped: list[str] = (), count: bool = True) -> str:
    """The report's Markdown for the given runs; figures are written under `out_dir/figures`."""
    out_dir = pathlib.Path(out_dir)
    lines = _section_header(runs, list(skipped))
    lines += _section_runs(runs, out_dir)
    lines += _section_comparison(runs)
    lines += _section_seeds(runs, out_dir)
    lines += _section_complexity(complexity_counts(runs, count=count))
    for run, stem in zip(runs, _figure_stems(runs)):
        lines += _section_run_figures(run, out_dir, stem)
    return "\n".join(lines) + "\n"


def write_report(paths, out_dir="report", count: bool = True) -> tuple[pathlib.Path, list[str]]:
    """Read run directories, write `out_dir/report.md` and its figures.

    Args:
        paths: run directories, or folders whose subfolders are run directories.
        out_dir: where report.md and figures/ go (created).
        count: build each variant to count its parameters and MACs
            (keras_gdfr.counting); False uses the runs' run_start numbers only.

    Returns:
        (path of report.md, messages about directories skipped).
    """
    runs, skipped = find_runs(paths)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = build_report(runs, out_dir, skipped, count=count)
    path = out_dir / "report.md"
    path.write_text(markdown, encoding="utf-8")
    return path, skipped
