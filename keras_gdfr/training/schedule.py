"""The paper's training schedule: the one place its numbers live.

Section 2.1 / Table 2 of the paper: SGD, learning rate 0.1, momentum 0.9, weight
decay 5e-4, label smoothing 0.1, 200 epochs, learning rate x0.2 ("Ld 0.2"). The
paper does not print its milestones; SPEC.md reads them as epochs 60, 120 and 160,
the usual 200-epoch CIFAR recipe that goes with a 0.2 decay.

The learning rate follows PyTorch's `MultiStepLR` stepped once per epoch: epoch
`e` (0-based) trains at `lr * gamma ** (number of milestones <= e)`. The Keras
schedule, `MultiStepLR`, applies this rule to the optimizer's iteration counter
instead (milestones in steps), so a resumed run (whose optimizer variables, the
counter included, are restored from its checkpoint) picks up the right rate
without any extra state.

This module is plain Python and imports no Keras, so that the recipe checks
(and the launcher, which must stay Keras-free) can use it. `MultiStepLR`, a Keras
object, lives in `keras_gdfr.training.optimizer`, which imports this module (never
the other way round).

Milestone scaling (`scale_milestones`, used for `--epochs N`): each milestone `m`
of an `E`-epoch schedule moves to `floor(m * N / E + 0.5)` (round half up), is
clamped into `[1, N - 1]` so that it still falls inside the shorter run, and
duplicates are dropped (one decay each). A 1-epoch run has no milestones.
Examples from the paper's schedule: 100 epochs -> [30, 60, 80]; 10 -> [3, 6, 8];
3 -> [1, 2]; 2 -> [1]; 1 -> []; 400 -> [120, 240, 320].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PAPER_EPOCHS = 200
PAPER_MILESTONES = (60, 120, 160)
PAPER_GAMMA = 0.2
PAPER_LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.1


def epochs_text(count: int) -> str:
    """`1 epoch`, `3 epochs`."""
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def scale_milestones(
    milestones: Sequence[int], from_epochs: int, to_epochs: int
) -> tuple[int, ...]:
    """Move a schedule's milestones proportionally to a run of another length.

    Args:
        milestones: epochs at which the rate decays, for a `from_epochs` run.
        from_epochs: the length the milestones were written for.
        to_epochs: the new run length.

    Returns:
        The ascending, duplicate-free milestones for `to_epochs` (rule in the
        module docstring). Unchanged when the two lengths are equal.
    """
    if from_epochs < 1 or to_epochs < 1:
        raise ValueError(
            "Epoch counts must be >= 1. "
            f"Received: from_epochs={from_epochs}, to_epochs={to_epochs}"
        )
    if from_epochs == to_epochs:
        return tuple(milestones)
    if to_epochs == 1:
        return ()  # no epoch boundary inside a 1-epoch run
    scaled = {
        min(max(math.floor(m * to_epochs / from_epochs + 0.5), 1), to_epochs - 1)
        for m in milestones
    }
    return tuple(sorted(scaled))


def lr_at_epoch(
    epoch: int,
    *,
    lr: float = PAPER_LR,
    milestones: Sequence[int] = PAPER_MILESTONES,
    gamma: float = PAPER_GAMMA,
) -> float:
    """The learning rate used throughout 1-based `epoch`, as a Python float.

    For the `epoch_end` event's `lr` field. Epoch `epoch` is 0-based epoch
    `epoch - 1`, so each milestone `m < epoch` has already decayed the rate:
    with the paper's schedule epochs 1-60 use 0.1 and epoch 61 uses 0.02.
    """
    if epoch < 1:
        raise ValueError(f"Epochs are 1-based. Received: epoch={epoch}")
    return rate_after(sum(1 for m in milestones if m < epoch), lr=lr, gamma=gamma)


def rate_after(decays: int, *, lr: float = PAPER_LR, gamma: float = PAPER_GAMMA) -> float:
    """The learning rate after `decays` milestones: `lr * gamma ** decays`, in float64."""
    return float(lr * gamma**decays)
