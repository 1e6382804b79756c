"""Classification metrics for `eval.json`: confusion matrix, per-class accuracy, ROC, AUC.

Pure numpy (no keras), so the report, the TUI and tests can use it without a
backend. `evaluation_report` assembles the `eval.json` object of
`docs/run-directory.md` from labels and softmax outputs; the paper's Fig. 14
(confusion matrices) and Fig. 15 (one-vs-rest ROC curves with AUC) are drawn
from it by `keras_gdfr.report.figures`.

Example:

>>> import numpy as np
>>> y_true = np.array([0, 1, 1])
>>> probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
>>> confusion_matrix(y_true, probs.argmax(1), 2).tolist()
[[1, 0], [1, 1]]
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

# Largest number of (fpr, tpr) points stored per class in eval.json.
MAX_ROC_POINTS = 201


def _as_labels(y_true) -> np.ndarray:
    """Integer labels from integer labels or one-hot rows."""
    y = np.asarray(y_true)
    if y.ndim == 2:
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"Labels must be 1-D integers or 2-D one-hot. Received: shape={y.shape}")
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: integer labels (or one-hot rows), shape (N,).
        y_pred: integer predictions (or probability rows, argmax taken), shape (N,).
        num_classes: K, the side of the matrix.

    Returns:
        int64 array (K, K); entry [i, j] counts images of true class i predicted as j.
    """
    y_true, y_pred = _as_labels(y_true), _as_labels(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred differ in length. Received: {y_true.shape} and {y_pred.shape}"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"{name} has labels outside [0, {num_classes}). "
                f"Received: min={y.min()}, max={y.max()}"
            )
    flat = y_true * num_classes + y_pred
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(cm) -> np.ndarray:
    """Accuracy within each true class (recall): diagonal over row sum.

    A class with no examples gets NaN.
    """
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.where(totals > 0, totals, 1), np.nan)


def _binary_roc(is_positive: np.ndarray, scores: np.ndarray):
    """ROC of one binary problem, as sklearn's `roc_curve(drop_intermediate=False)`.

    Scores are sorted descending; tied scores form one threshold (one step, possibly
    diagonal), and the curve starts at (0, 0) with threshold +inf.
    """
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores, is_positive = scores[order], is_positive[order]
    # Last index of every run of equal scores: each is one threshold.
    distinct = np.where(np.diff(scores))[0]
    threshold_idx = np.r_[distinct, scores.size - 1]
    tps = np.cumsum(is_positive)[threshold_idx].astype(np.float64)
    fps = (threshold_idx + 1) - tps
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    thresholds = np.r_[np.inf, scores[threshold_idx]]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, thresholds


def roc_curve_ovr(y_true, probs, k: int):
    """One-vs-rest ROC curve of class `k`: class k positive, all others negative.

    Ties are handled like sklearn's `roc_curve(..., drop_intermediate=False)`:
    images with equal scores change the curve together, in one (diagonal) step.

    Args:
        y_true: integer labels (or one-hot rows), shape (N,).
        probs: class scores (softmax outputs), shape (N, K).
        k: the positive class.

    Returns:
        (fpr, tpr, thresholds), float arrays of equal length starting at (0, 0) with
        threshold +inf. When class k has no examples (or every example is class k),
        tpr (or fpr) is all NaN, as the rate is undefined.
    """
    y = _as_labels(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != y.shape[0]:
        raise ValueError(
            f"probs must be (N, K) with N = len(y_true) = {y.shape[0]}. Received: shape={probs.shape}"
        )
    if not 0 <= k < probs.shape[1]:
        raise ValueError(f"k must be in [0, {probs.shape[1]}). Received: k={k}")
    return _binary_roc((y == k).astype(np.int64), probs[:, k])


def auc(fpr, tpr) -> float:
    """Area under a curve by the trapezoid rule (x = fpr, y = tpr).

    x must be monotonic (increasing or decreasing); NaN in either gives NaN.
    """
    x, y = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"fpr and tpr must be 1-D of equal length. Received: {x.shape}, {y.shape}")
    if x.size < 2 or np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    dx = np.diff(x)
    direction = 1.0
    if np.any(dx < 0):
        if np.all(dx <= 0):
            direction = -1.0
        else:
            raise ValueError("fpr is not monotonic; cannot integrate.")
    return float(direction * np.sum(dx * (y[1:] + y[:-1]) / 2.0))


def decimate_curve(fpr, tpr, max_points: int = MAX_ROC_POINTS):
    """At most `max_points` points of an ROC curve, for storage and plotting.

    First keeps only the corners (points where the slope changes), which leaves the
    trapezoid AUC unchanged; if that is still too many, keeps evenly spaced corners,
    always including both ends.
    """
    x, y = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    if x.size <= 2:
        return x, y
    dx, dy = np.diff(x), np.diff(y)
    # A middle point is a corner when the two segments around it are not collinear.
    cross = dx[:-1] * dy[1:] - dy[:-1] * dx[1:]
    keep = np.r_[True, np.abs(cross) > 1e-12, True]
    x, y = x[keep], y[keep]
    if x.size > max_points:
        idx = np.unique(np.round(np.linspace(0, x.size - 1, max_points)).astype(int))
        x, y = x[idx], y[idx]
    return x, y


def softmax(logits) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _check_probabilities(probs: np.ndarray) -> None:
    """Refuse logits passed as probabilities: ROC thresholds and AUCs would be wrong."""
    if probs.size and (probs.min() < -1e-6 or probs.max() > 1 + 1e-6 or
                       not np.allclose(probs.sum(axis=1), 1.0, atol=1e-2)):
        raise ValueError(
            "probs must be softmax outputs (rows in [0, 1] summing to 1); these look like "
            "logits: pass from_logits=True"
        )


def _finite_or_none(value: float):
    """JSON has no NaN: undefined metrics become null."""
    return None if value is None or not math.isfinite(value) else float(value)


def evaluation_report(
    y_true,
    probs,
    class_names,
    loss: float | None = None,
    source: str | None = None,
    checkpoint: str | None = None,
    max_roc_points: int = MAX_ROC_POINTS,
    from_logits: bool = False,
    dataset: str | None = None,
) -> dict:
    """The `eval.json` object of `docs/run-directory.md` from labels and softmax outputs.

    Args:
        y_true: integer labels (or one-hot rows), shape (N,).
        probs: softmax outputs, shape (N, K).
        class_names: K names (the source's class ids), in label order.
        loss: the evaluation loss (as the model computes it, label smoothing included).
        source: what was evaluated, e.g. "test split of cifar10 (tfds)".
        checkpoint: which weights, e.g. "model.keras".
        max_roc_points: ROC points stored per class (AUC uses the full curve).
        from_logits: `probs` are logits (GDFRNet's head has no activation): apply
            softmax first. Otherwise rows must be probabilities.
        dataset: the recipe's dataset: its class ids become readable names
            (`keras_gdfr.data.specs.readable_class_names`: GTSRB's signs, WordNet words).

    Returns:
        A JSON-ready dict: accuracy, loss, num_examples, class_names (readable,
        what the report and the TUI show), class_ids (as the source names them), per_class_accuracy, confusion_matrix, roc {name: {fpr, tpr, auc}},
        macro_auc, source, checkpoint. Undefined values (a class with no test
        images) are null; macro_auc averages the defined per-class AUCs.
    """
    y = _as_labels(y_true)
    probs = softmax(probs) if from_logits else np.asarray(probs, dtype=np.float64)
    from keras_gdfr.data.specs import readable_class_names

    class_ids = [str(name) for name in class_names]
    class_names = readable_class_names(dataset, class_ids)
    if probs.ndim != 2 or probs.shape != (y.shape[0], len(class_names)):
        raise ValueError(
            f"probs must be (N, K) = ({y.shape[0]}, {len(class_names)}). Received: shape={probs.shape}"
        )
    _check_probabilities(probs)
    cm = confusion_matrix(y, probs.argmax(axis=1), len(class_names))
    roc, aucs = {}, []
    for k, name in enumerate(class_names):
        fpr, tpr, _ = roc_curve_ovr(y, probs, k)
        area = _finite_or_none(auc(fpr, tpr))
        if area is None:
            roc[name] = {"fpr": [], "tpr": [], "auc": None}
            continue
        aucs.append(area)
        fpr, tpr = decimate_curve(fpr, tpr, max_roc_points)
        roc[name] = {"fpr": fpr.round(6).tolist(), "tpr": tpr.round(6).tolist(), "auc": area}
    return {
        "accuracy": float(np.trace(cm) / max(y.size, 1)),
        "loss": _finite_or_none(loss),
        "num_examples": int(y.size),
        "class_names": class_names,
        "class_ids": class_ids,
        "per_class_accuracy": [_finite_or_none(a) for a in per_class_accuracy(cm)],
        "confusion_matrix": cm.tolist(),
        "roc": roc,
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "source": source,
        "checkpoint": checkpoint,
    }


def save_evaluation_report(report: dict, path) -> pathlib.Path:
    """Write an `eval.json` atomically (keras_gdfr.atomic) and return its path."""
    from keras_gdfr.atomic import atomic_write

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, json.dumps(report, indent=2))
