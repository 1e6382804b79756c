"""Loading saved GDFRNet models with every keras-gdfr class registered."""

from __future__ import annotations

import keras

import keras_gdfr.layers  # noqa: F401  (registers FRM, FGCM, FOM, FRRB, ...)
import keras_gdfr.training.optimizer  # noqa: F401  (registers TorchSGD and MultiStepLR)


def load_model(path, compile: bool = True) -> keras.Model:
    """`keras.saving.load_model` for a `.keras` file written by keras-gdfr (a run's `model.keras`)."""
    return keras.saving.load_model(path, compile=compile)
