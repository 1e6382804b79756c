"""The report's figures: training curves, confusion matrices (Fig. 14), ROC curves (Fig. 15).

matplotlib with the Agg backend (no display needed); every figure is saved as a
PNG of a fixed pixel size (`width x height` at 100 dpi, no tight cropping), so
the report's layout does not depend on label lengths.
"""

from __future__ import annotations

import pathlib

import numpy as np

DPI = 100
CURVES_SIZE = (1000, 400)
CONFUSION_SIZE = (640, 600)
ROC_SIZE = (640, 600)
# Above this many classes, cells and ticks are not labelled.
ANNOTATE_MAX_CLASSES = 20
# Titles and tick labels longer than this (characters) are wrapped onto several lines,
# so that a run label with model overrides is not cut off at the figure's edge.
TITLE_WIDTH = 60
TICK_LABEL_WIDTH = 28


def _pyplot():
    """matplotlib.pyplot on the Agg backend (imported late: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _new_figure(size_px: tuple[int, int], ncols: int = 1):
    plt = _pyplot()
    fig, axes = plt.subplots(1, ncols, figsize=(size_px[0] / DPI, size_px[1] / DPI), dpi=DPI)
    return fig, axes


def _wrap(text: str, width: int) -> str:
    """`text` broken into lines of at most `width` characters (at spaces where possible)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) if text else ""


def _save(fig, path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    _pyplot().close(fig)
    return path


def plot_training_curves(epoch_ends: list[dict], path, title: str = "") -> pathlib.Path:
    """Accuracy and loss against epoch (train and validation), side by side.

    Args:
        epoch_ends: `epoch_end` events (docs/run-directory.md), one per epoch.
        path: the PNG to write (1000 x 400 px).
        title: the figure's title, e.g. the run id.
    """
    fig, (acc_ax, loss_ax) = _new_figure(CURVES_SIZE, ncols=2)
    epochs = [e["epoch"] for e in epoch_ends]
    for ax, metric, label in ((acc_ax, "accuracy", "accuracy (%)"), (loss_ax, "loss", "loss")):
        scale = 100.0 if metric == "accuracy" else 1.0
        for key, name, style in ((metric, "train", "-o"), (f"val_{metric}", "validation", "-s")):
            points = [(e["epoch"], e[key] * scale) for e in epoch_ends if e.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if epochs:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no completed epoch", ha="center", va="center", transform=ax.transAxes)
    _epoch_axes((acc_ax, loss_ax), epochs)
    fig.suptitle(_wrap(title, 2 * TITLE_WIDTH))
    fig.tight_layout()
    return _save(fig, path)


def _epoch_axes(axes, epochs: list[int]) -> None:
    """x axes that span the epochs, with whole-number ticks (every epoch up to 12)."""
    if not epochs:
        return
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        if len(epochs) <= 12:
            ax.set_xticks(epochs)  # every epoch, whole numbers only (also for 1 epoch)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_seed_curves(series: list[tuple[str, list[dict]]], path, title: str = "") -> pathlib.Path:
    """Validation accuracy and training loss against epoch, one line per seed of one experiment.

    Args:
        series: (label, `epoch_end` events) per run, e.g. ("seed 0", [...]).
        path: the PNG to write (1000 x 400 px).
        title: the figure's title.
    """
    fig, (acc_ax, loss_ax) = _new_figure(CURVES_SIZE, ncols=2)
    epochs = sorted({e["epoch"] for _, ends in series for e in ends})
    for ax, key, scale, label in ((acc_ax, "val_accuracy", 100.0, "validation accuracy (%)"),
                                  (loss_ax, "loss", 1.0, "training loss")):
        for name, ends in series:
            points = [(e["epoch"], e[key] * scale) for e in ends if e.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, "-o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if epochs:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no completed epoch", ha="center", va="center", transform=ax.transAxes)
    _epoch_axes((acc_ax, loss_ax), epochs)
    fig.suptitle(_wrap(title, 2 * TITLE_WIDTH))
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(cm, class_names: list[str], path, title: str = "") -> pathlib.Path:
    """A confusion matrix as in the paper's Fig. 14: counts, true class down, predicted across.

    Cells are coloured by the row-normalised rate (so rare classes stay visible)
    and labelled with counts when there are at most 20 classes.
    """
    cm = np.asarray(cm, dtype=np.int64)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = _new_figure(CONFUSION_SIZE)
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    k = cm.shape[0]
    if k <= ANNOTATE_MAX_CLASSES:
        ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), class_names, fontsize=8)
        for i in range(k):
            for j in range(k):
                colour = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(_wrap(title, TITLE_WIDTH), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_roc_curves(roc: dict, path, title: str = "", macro_auc: float | None = None) -> pathlib.Path:
    """One-vs-rest ROC curves, one per class with its AUC, as in the paper's Fig. 15.

    Args:
        roc: eval.json's `roc`: {class name: {"fpr": [...], "tpr": [...], "auc": ...}}.
        path: the PNG to write (640 x 600 px).
        title: the figure's title.
        macro_auc: shown in the title when given.
    """
    fig, ax = _new_figure(ROC_SIZE)
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="chance")
    curves = [(name, c) for name, c in roc.items() if c.get("fpr") and c.get("auc") is not None]
    for name, curve in curves:
        label = f"{name} (AUC {curve['auc']:.3f})" if len(curves) <= ANNOTATE_MAX_CLASSES else None
        ax.plot(curve["fpr"], curve["tpr"], linewidth=1.0, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    if curves and len(curves) <= ANNOTATE_MAX_CLASSES:
        ax.legend(fontsize=7, loc="lower right")
    title = _wrap(title, TITLE_WIDTH)
    if macro_auc is not None:
        title = f"{title}\nmacro AUC {macro_auc:.4f}".strip()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_vs_paper(entries: list[tuple[str, float | None, float | None]], path) -> pathlib.Path:
    """Measured and paper test accuracy side by side, one pair of bars per run.

    A missing number draws no bar (not a bar at 0); when no run has a paper number
    (e.g. narrowed networks), only the measured bars are drawn and the title says why.
    Long labels (a variant with model overrides) are wrapped, not rotated off the figure.

    Args:
        entries: (label, measured %, paper %) per run; None where unknown.
        path: the PNG to write (1000 x 400 px).
    """
    fig, ax = _new_figure(CURVES_SIZE)
    x = np.arange(len(entries))
    series = [("measured", [m for _, m, _ in entries]), ("paper", [p for _, _, p in entries])]
    series = [(name, values) for name, values in series if any(v is not None for v in values)]
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        present = [(xi, v) for xi, v in zip(x, values) if v is not None]
        if not present:
            continue
        xs, ys = zip(*present)
        bars = ax.bar(np.asarray(xs) + offset, ys, width=width, label=name)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in ys], fontsize=7)
    wrap = TICK_LABEL_WIDTH if len(entries) <= 6 else TICK_LABEL_WIDTH // 2
    ax.set_xticks(x, [_wrap(label, wrap) for label, _, _ in entries], fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    if series:
        ax.legend()
    if not any(p is not None for _, _, p in entries):
        ax.set_title("no paper number for these networks (model overrides or datasets the paper does not report)",
                     fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
