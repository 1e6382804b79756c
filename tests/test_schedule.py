"""The paper's schedule: milestone scaling, MultiStepLR by step, lr_at_epoch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_gdfr.training import schedule
from keras_gdfr.training.optimizer import MultiStepLR
from keras_gdfr.training.schedule import lr_at_epoch, scale_milestones


def test_paper_constants():
    assert schedule.PAPER_EPOCHS == 200
    assert schedule.PAPER_MILESTONES == (60, 120, 160)
    assert (schedule.PAPER_LR, schedule.PAPER_GAMMA) == (0.1, 0.2)
    assert (schedule.MOMENTUM, schedule.WEIGHT_DECAY, schedule.LABEL_SMOOTHING) == (0.9, 5e-4, 0.1)


@pytest.mark.parametrize(
    "to_epochs, expected",
    [
        (200, (60, 120, 160)),
        (100, (30, 60, 80)),
        (10, (3, 6, 8)),
        (3, (1, 2)),  # 0.9, 1.8, 2.4 -> 1, 2, 2 -> deduplicated
        (2, (1,)),  # 0.6, 1.2, 1.6 -> 1, 1, 2 -> clamped below 2 -> 1
        (1, ()),  # no epoch boundary inside one epoch
        (5, (2, 3, 4)),  # 1.5 rounds half up to 2
        (400, (120, 240, 320)),
    ],
)
def test_scale_milestones_from_the_paper(to_epochs, expected):
    assert scale_milestones((60, 120, 160), 200, to_epochs) == expected


def test_scale_milestones_relative_to_any_length():
    assert scale_milestones((30, 60, 80), 100, 10) == (3, 6, 8)
    assert scale_milestones((), 200, 10) == ()


def test_scale_milestones_rejects_zero_epochs():
    with pytest.raises(ValueError, match=r"Received: from_epochs=200, to_epochs=0"):
        scale_milestones((60,), 200, 0)


def rate(schedule_: MultiStepLR, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule_(keras.ops.convert_to_tensor(step, "int64"))))


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.1), (599, 0.1), (600, 0.02), (1199, 0.02), (1200, 0.004), (1599, 0.004), (1600, 0.0008), (10**6, 0.0008)],
)
def test_multistep_values_at_milestone_boundaries(step, expected):
    paper = MultiStepLR.from_epochs(0.1, (60, 120, 160), 0.2, steps_per_epoch=10)
    assert paper.milestones == (600, 1200, 1600)
    assert rate(paper, step) == pytest.approx(expected, rel=1e-6)
    assert paper.lr_at_step(step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 0.1), (4, 0.1), (5, 0.02), (9, 0.02), (10, 0.004), (14, 0.004)])
def test_multistep_after_scaling_to_three_epochs(step, expected):
    short = MultiStepLR.from_epochs(0.1, scale_milestones((60, 120, 160), 200, 3), 0.2, steps_per_epoch=5)
    assert short.milestones == (5, 10)
    assert rate(short, step) == pytest.approx(expected, rel=1e-6)


def test_no_milestones_is_constant():
    assert rate(MultiStepLR(0.05, (), 0.2), 12345) == pytest.approx(0.05)


def test_lr_at_epoch_is_the_rate_of_every_step_of_that_epoch():
    steps = 3
    paper = MultiStepLR.from_epochs(0.1, (60, 120, 160), 0.2, steps)
    for epoch in (1, 60, 61, 120, 121, 160, 161, 200):
        expected = lr_at_epoch(epoch)
        assert paper.lr_at_step((epoch - 1) * steps) == expected
        assert paper.lr_at_step(epoch * steps - 1) == expected
    assert (lr_at_epoch(60), lr_at_epoch(61)) == (0.1, pytest.approx(0.02))
    assert lr_at_epoch(2, lr=0.1, milestones=(1, 2), gamma=0.2) == pytest.approx(0.02)


def test_lr_at_epoch_is_one_based():
    with pytest.raises(ValueError, match="Received: epoch=0"):
        lr_at_epoch(0)


def test_schedule_serializes():
    paper = MultiStepLR(0.1, [600, 1200], 0.2)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(paper))
    assert isinstance(clone, MultiStepLR)
    assert clone.get_config() == {"initial_lr": 0.1, "milestones": [600, 1200], "gamma": 0.2}
    np.testing.assert_allclose(rate(clone, 1200), 0.004, rtol=1e-6)


def test_schedule_rejects_unordered_milestones():
    with pytest.raises(ValueError, match=r"Received: milestones=\(20, 10\)"):
        MultiStepLR(0.1, [20, 10], 0.2)
