"""The conv layers our modules build inside themselves, called without Keras's `Layer.__call__` on torch.

A GDFRNet module (FRM, FRRB, FGCM, FOM, ...) calls its sublayers from its own `call`, which
Keras's `Layer.__call__` has already wrapped: inputs cast to the compute dtype, autocast and
name scopes set, `training` resolved. Wrapping every sublayer again costs ~75 us a conv and
~190 us a BatchNorm on this CPU, a fixed ~20 ms of a `tiny` train step (docs/performance.md).
On torch, for a built sublayer given a real tensor and no other argument, these classes run
`call` directly; anything else (symbolic tensors, `meta` shape inference, other backends, a
mask or extra arguments) goes through Keras's `__call__` as before. The layers are Keras's own
otherwise: same constructor, config, variables, paths and saved weights.

`GDFR_DIRECT_CALL=0` (before import) or `DIRECT = False` turns the direct path off (A/B timing).
"""

from __future__ import annotations

import os

import keras

DIRECT = os.environ.get("GDFR_DIRECT_CALL", "1") != "0"


def calls_directly(layer: keras.layers.Layer, inputs) -> bool:
    """Whether `layer` may skip `Layer.__call__` for `inputs` (torch, built, a real tensor)."""
    if not DIRECT or not layer.built or keras.backend.backend() != "torch":
        return False
    import torch

    return isinstance(inputs, torch.Tensor) and inputs.device.type != "meta"


class DirectCall:
    """Mixin: `__call__(inputs)` runs `call(inputs)` when `calls_directly` allows."""

    def __call__(self, inputs, *args, **kwargs):
        if not args and not kwargs and calls_directly(self, inputs):
            return self.call(inputs)
        return super().__call__(inputs, *args, **kwargs)


@keras.saving.register_keras_serializable(package="keras_gdfr")
class DirectConv2D(DirectCall, keras.layers.Conv2D):
    """`keras.layers.Conv2D`, called directly on torch inside our modules."""


@keras.saving.register_keras_serializable(package="keras_gdfr")
class DirectDepthwiseConv2D(DirectCall, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D`, called directly on torch inside our modules."""


@keras.saving.register_keras_serializable(package="keras_gdfr")
class DirectConv2DTranspose(DirectCall, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose`, called directly on torch inside our modules."""
