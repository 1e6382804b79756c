"""keras_gdfr.evaluation: confusion matrix, ROC, AUC and the eval.json object, by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_gdfr import evaluation as ev


def test_confusion_matrix_equals_a_hand_count():
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 2, 0, 2]
    # true 0: predicted 0 once, 1 once        -> [1, 1, 0]
    # true 1: predicted 1 twice, 2 once        -> [0, 2, 1]
    # true 2: predicted 2 three times, 0 once  -> [1, 0, 3]
    expected = [[1, 1, 0], [0, 2, 1], [1, 0, 3]]
    cm = ev.confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == expected
    np.testing.assert_allclose(ev.per_class_accuracy(cm), [1 / 2, 2 / 3, 3 / 4])


def test_confusion_matrix_accepts_one_hot_and_probabilities():
    y_true = np.eye(3)[[0, 2]]
    probs = np.array([[0.8, 0.1, 0.1], [0.5, 0.1, 0.4]])
    assert ev.confusion_matrix(y_true, probs, 3).tolist() == [[1, 0, 0], [0, 0, 0], [1, 0, 0]]


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="outside"):
        ev.confusion_matrix([0, 3], [0, 1], 3)


def test_per_class_accuracy_of_an_empty_class_is_nan():
    acc = ev.per_class_accuracy([[2, 0], [0, 0]])
    assert acc[0] == 1.0 and np.isnan(acc[1])


def test_auc_of_a_hand_computed_example():
    # Class 1 scores (probs[:, 1]) of four images: negatives 0.1, 0.4; positives 0.35, 0.8.
    # Walking the threshold down through the sorted scores 0.8 (pos), 0.4 (neg),
    # 0.35 (pos), 0.1 (neg): (fpr, tpr) goes (0,0) -> (0,.5) -> (.5,.5) -> (.5,1) -> (1,1).
    # Area: the strip 0..0.5 at height 0.5 (0.25) + the strip 0.5..1 at height 1 (0.5) = 0.75,
    # the same as the share of (positive, negative) pairs ranked correctly: 3 of 4.
    y_true = [0, 0, 1, 1]
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    fpr, tpr, thresholds = ev.roc_curve_ovr(y_true, probs, 1)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
    assert ev.auc(fpr, tpr) == pytest.approx(0.75)


def test_tied_scores_make_one_diagonal_step():
    # Class 1 scores: pos 0.9, neg 0.5, pos 0.5, neg 0.2. The tie at 0.5 moves fpr and tpr
    # together: (0,0) -> (0,.5) -> (.5,1) -> (1,1), as sklearn's roc_curve(drop_intermediate=False).
    # AUC by pairs: pos 0.9 beats both negatives (2); pos 0.5 ties neg 0.5 (counts 1/2) and
    # beats 0.2 (1): 3.5 / 4 = 0.875. Trapezoids: 0.5 * (0.5 + 1) / 2 + 0.5 * 1 = 0.875.
    y_true = [0, 1, 0, 1]
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.8, 0.2], [0.1, 0.9]])
    fpr, tpr, thresholds = ev.roc_curve_ovr(y_true, probs, 1)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.5, 0.2])
    assert ev.auc(fpr, tpr) == pytest.approx(0.875)


def _pairwise_auc(is_positive, scores):
    """AUC as the Mann-Whitney statistic: P(positive score > negative score) + P(tie) / 2."""
    pos, neg = scores[is_positive], scores[~is_positive]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (pos.size * neg.size)


def test_auc_equals_the_pairwise_statistic_with_many_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    probs = rng.integers(0, 5, size=(300, 3)).astype(float) + 1.0  # scores with many ties
    probs /= probs.sum(axis=1, keepdims=True)
    for k in range(3):
        fpr, tpr, _ = ev.roc_curve_ovr(y, probs, k)
        assert ev.auc(fpr, tpr) == pytest.approx(_pairwise_auc(y == k, probs[:, k]))


def test_perfect_and_random_classifiers():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=4000)
    perfect = np.eye(4)[y] * 0.9 + 0.025
    constant = np.full((y.size, 4), 0.25)
    random = rng.dirichlet(np.ones(4), size=y.size)
    for k in range(4):
        assert ev.auc(*ev.roc_curve_ovr(y, perfect, k)[:2]) == pytest.approx(1.0)
        assert ev.auc(*ev.roc_curve_ovr(y, constant, k)[:2]) == pytest.approx(0.5)
        assert ev.auc(*ev.roc_curve_ovr(y, random, k)[:2]) == pytest.approx(0.5, abs=0.03)


def test_auc_integrates_a_decreasing_x_and_refuses_a_zigzag():
    assert ev.auc([1.0, 0.5, 0.0], [1.0, 1.0, 0.0]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="monotonic"):
        ev.auc([0.0, 1.0, 0.5], [0.0, 1.0, 1.0])


def test_a_class_without_examples_has_an_undefined_curve():
    fpr, tpr, _ = ev.roc_curve_ovr([0, 0, 1], np.full((3, 3), 1 / 3), 2)
    assert np.isnan(tpr).all() and np.isnan(ev.auc(fpr, tpr))


def test_decimation_keeps_the_area_and_the_ends():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=5000)
    scores = rng.random(5000) + 0.3 * y
    probs = np.stack([1 - scores / 1.3, scores / 1.3], axis=1)
    fpr, tpr, _ = ev.roc_curve_ovr(y, probs, 1)
    assert fpr.size > 1000
    small_fpr, small_tpr = ev.decimate_curve(fpr, tpr, 201)
    assert small_fpr.size <= 201
    assert (small_fpr[0], small_tpr[0], small_fpr[-1], small_tpr[-1]) == (0, 0, 1, 1)
    assert ev.auc(small_fpr, small_tpr) == pytest.approx(ev.auc(fpr, tpr), abs=2e-3)
    # Corners only (no evenly spaced thinning needed): the area is exactly the same.
    corner_fpr, corner_tpr = ev.decimate_curve([0, 0, 0, 0.5, 1], [0, 0.25, 0.5, 0.5, 1.0])
    assert corner_fpr.tolist() == [0, 0, 0.5, 1]
    assert ev.auc(corner_fpr, corner_tpr) == pytest.approx(ev.auc([0, 0, 0, 0.5, 1], [0, 0.25, 0.5, 0.5, 1.0]))


def test_evaluation_report_has_the_eval_json_shape(tmp_path):
    rng = np.random.default_rng(3)
    y = np.r_[np.arange(3).repeat(200), [0]]
    logits = rng.normal(size=(y.size, 3)) + 2.0 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = ["cat", "dog", "bird"]
    report = ev.evaluation_report(y, probs, names, loss=0.7, source="test split of x", checkpoint="model.keras")
    expected_keys = {
        "accuracy", "loss", "num_examples", "class_names", "class_ids", "per_class_accuracy", "confusion_matrix",
        "roc", "macro_auc", "source", "checkpoint",
    }
    assert set(report) == expected_keys
    cm = ev.confusion_matrix(y, probs, 3)
    assert report["confusion_matrix"] == cm.tolist()
    assert report["accuracy"] == pytest.approx(np.trace(cm) / y.size)
    assert report["num_examples"] == y.size and report["class_names"] == names and report["loss"] == 0.7
    assert set(report["roc"]) == set(names)
    aucs = []
    for k, name in enumerate(names):
        curve = report["roc"][name]
        full_auc = ev.auc(*ev.roc_curve_ovr(y, probs, k)[:2])
        assert curve["auc"] == pytest.approx(full_auc)  # on the full curve
        assert len(curve["fpr"]) == len(curve["tpr"]) <= ev.MAX_ROC_POINTS
        aucs.append(full_auc)
    assert report["macro_auc"] == pytest.approx(np.mean(aucs))
    # JSON-ready, no NaN.
    path = ev.save_evaluation_report(report, tmp_path / "eval.json")
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == json.loads(json.dumps(report))


def test_evaluation_report_writes_null_for_an_empty_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1]])
    report = ev.evaluation_report([0, 1], probs, ["a", "b", "c"])
    assert report["per_class_accuracy"] == [1.0, 1.0, None]
    assert report["roc"]["c"] == {"fpr": [], "tpr": [], "auc": None}
    assert report["macro_auc"] == pytest.approx(1.0)
    assert report["loss"] is None
    json.dumps(report, allow_nan=False)


def test_evaluation_report_checks_shapes():
    with pytest.raises(ValueError, match="probs"):
        ev.evaluation_report([0, 1], np.ones((2, 2)) / 2, ["a", "b", "c"])


def test_evaluation_report_takes_logits_only_when_told():
    logits = np.array([[2.0, -1.0], [0.5, 3.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="from_logits"):
        ev.evaluation_report([0, 1, 1], logits, ["a", "b"])
    from_logits = ev.evaluation_report([0, 1, 1], logits, ["a", "b"], from_logits=True)
    assert from_logits == ev.evaluation_report([0, 1, 1], ev.softmax(logits), ["a", "b"])


def test_evaluation_report_shows_readable_class_names():
    probs = np.eye(3)[[0, 1, 2]]
    report = ev.evaluation_report([0, 1, 2], probs, ["00000", "00014", "00042"], dataset="gtsrb")
    assert report["class_names"] == [
        "Speed limit (20km/h)", "Stop", "End of no passing by vehicles over 3.5 metric tons",
    ]
    assert report["class_ids"] == ["00000", "00014", "00042"]
    assert set(report["roc"]) == set(report["class_names"])
    nette = ev.evaluation_report([0, 1], np.eye(2), ["n01440764", "n03888257"], dataset="imagenette")
    assert nette["class_names"] == ["tench", "parachute"]
    # Without a dataset (or for ids that are already words) the ids are the names.
    assert ev.evaluation_report([0, 1], np.eye(2), ["00000", "00001"])["class_names"] == ["00000", "00001"]
