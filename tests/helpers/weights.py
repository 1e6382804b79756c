"""Test-only weight helpers shared by the model-level tests."""

from __future__ import annotations

import numpy as np


def randomise_batchnorm(model, rng: np.random.Generator | int = 0, *, affine: bool = False) -> None:
    """Non-trivial BatchNorm statistics (mean ~ N(0, 0.1), variance ~ U(0.5, 1.5)), in weight order.

    A fresh model's (0, 1) statistics would let a mistake in the inference-mode BN path pass.
    `affine`: gamma ~ U(0.5, 1.5) and beta ~ N(0, 0.2) too (a fresh 1 and 0 hide a swapped pair).
    """
    rng = np.random.default_rng(rng) if isinstance(rng, int) else rng
    for weight in model.weights:
        if affine and weight.path.endswith("/gamma"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
        elif affine and weight.path.endswith("/beta"):
            weight.assign(rng.normal(0, 0.2, weight.shape).astype("float32"))
        if weight.path.endswith("moving_mean"):
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))
        elif weight.path.endswith("moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
