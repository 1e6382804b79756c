"""BatchNorm with a fused PyTorch path: Keras's semantics, one `torch.nn.functional.batch_norm` call.

Keras's `BatchNormalization` on the torch backend computes its moments with
generic ops (mean, square, mean, subtract), normalises with four more, and
autograd differentiates every one of them: on a CPU profile of a `tiny` train
step these elementwise ops and their backward sums dominate. `BatchNorm` is the
same layer (same constructor, config, variables, variable order and update
rule; it saves and loads exactly like `keras.layers.BatchNormalization`), whose
`call` uses PyTorch's fused batch-norm kernel (and its fused backward) when the
backend is torch, and Keras's own code everywhere else.

Semantics kept, in training:
- the output is normalised with the batch mean and the *biased* batch variance,
  as Keras does (PyTorch normalises with the biased one too);
- the moving statistics follow Keras's rule `moving = momentum * moving +
  (1 - momentum) * batch` with the *biased* batch variance. PyTorch's own running
  update uses the unbiased variance, so it is not used: the kernel is given
  scratch running buffers with momentum 1.0 (so they receive exactly the batch
  mean and unbiased variance), the variance is rescaled by (n - 1) / n, and the
  moving statistics are updated by Keras's rule;
- float16/bfloat16 inputs are computed in float32 and cast back, as Keras does.
In inference, the moving statistics normalise, as in Keras.

Numerically the results agree with Keras's to float32 rounding (PyTorch computes
the variance in one Welford pass, Keras as E[x^2] - E[x]^2); tests/test_batch_norm.py
checks outputs, gradients and moving statistics against Keras's layer.

Falls back to Keras's code for masks, renorm, `synchronized`, a channel with a
single value per batch (PyTorch refuses it in training) and non-torch tensors.
Set `FUSED_TORCH = False` (module attribute), or the environment variable
``GDFR_FUSED_BN=0`` before import, to use Keras's code everywhere (for A/B timing).
"""

from __future__ import annotations

import os

import keras
from keras import ops

from keras_gdfr.layers.direct_call import calls_directly

FUSED_TORCH = os.environ.get("GDFR_FUSED_BN", "1") != "0"
# (layer, inputs) -> outputs for training-mode calls, set by keras_gdfr.training.distributed
# under torchrun with sync_batchnorm (moments all-reduced over the ranks); None: local moments.
TRAINING_HOOK = None


@keras.saving.register_keras_serializable(package="keras_gdfr")
class BatchNorm(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with a fused PyTorch kernel on the torch backend."""

    def __call__(self, inputs, training=None, mask=None, **kwargs):
        # Called by our layers with `training` resolved: `call` directly on torch, as the conv
        # layers of `direct_call` are (Keras's `Layer.__call__` costs ~190 us a BatchNorm here).
        if training is not None and mask is None and not kwargs and calls_directly(self, inputs) \
                and self._fused_applies(inputs, None):
            return self.call(inputs, training=training)
        return super().__call__(inputs, training=training, mask=mask, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if TRAINING_HOOK is not None and training and self.trainable and mask is None:
            return TRAINING_HOOK(self, inputs)
        if not self._fused_applies(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import torch
        import torch.nn.functional as F

        x = inputs
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # Keras computes BatchNorm in float32 for half inputs
        axis = self.axis % x.ndim
        if axis != 1:
            x = torch.movedim(x, axis, 1)  # a view: channels_last stays in its memory layout
        gamma = self.gamma.value if self.scale else None
        beta = self.beta.value if self.center else None
        channels = x.shape[1]
        count = x.numel() // max(channels, 1)
        if training and self.trainable:
            if count < 2:
                return super().call(inputs, training=training, mask=mask)
            batch_mean = torch.zeros(channels, dtype=x.dtype, device=x.device)
            batch_var = torch.ones(channels, dtype=x.dtype, device=x.device)
            y = F.batch_norm(x, batch_mean, batch_var, gamma, beta, training=True, momentum=1.0, eps=self.epsilon)
            with torch.no_grad():
                biased_var = batch_var * ((count - 1) / count)
                update_moving_statistic(self.moving_mean, batch_mean, self.momentum)
                update_moving_statistic(self.moving_variance, biased_var, self.momentum)
        else:
            y = F.batch_norm(
                x, self.moving_mean.value, self.moving_variance.value, gamma, beta,
                training=False, momentum=0.0, eps=self.epsilon,
            )
        if axis != 1:
            y = torch.movedim(y, 1, axis)
        return ops.cast(y, self.compute_dtype)

    def _fused_applies(self, inputs, mask) -> bool:
        if not FUSED_TORCH or keras.backend.backend() != "torch":
            return False
        if mask is not None or self.renorm or self.synchronized:
            return False
        import torch

        return isinstance(inputs, torch.Tensor) and inputs.dtype.is_floating_point and inputs.device.type != "meta"


def update_moving_statistic(variable, batch_value, momentum: float) -> None:
    """Keras's rule `moving = momentum * moving + (1 - momentum) * batch`, in Keras's ops and rounding
    (BatchNorm's fused path and the synchronized one of `keras_gdfr.training.distributed`).

    Eager, the result is copied into the variable's tensor as `Variable.assign` would, without its
    conversions and checks (~10 us a call here); under a stateless scope (the compiled step's
    trace) `assign` records the update instead, so it goes through `assign` there.
    """
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    updated = variable.value * momentum + batch_value * (1.0 - momentum)
    if in_stateless_scope():
        variable.assign(updated)
    else:
        variable.value.copy_(updated)
