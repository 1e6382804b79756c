"""PyTorch's SGD, exactly, as a Keras 3 optimizer (the paper trained with PyTorch).

`torch.optim.SGD(params, lr, momentum=0.9, weight_decay=5e-4)` does, per parameter
`w` with gradient `g`:

    g' = g + weight_decay * w          # coupled L2, before momentum
    buf = momentum * buf + g'          # first step: buf = g'
    w = w - lr * buf                   # nesterov: w = w - lr * (g' + momentum * buf)

Keras's own `SGD` differs in two ways that matter here: its velocity holds
`lr * g` (`v = mu * v - lr * g`), so a rate change at a milestone acts on the
next gradient only, not on the whole buffer as in PyTorch; and its `weight_decay`
is decoupled (`w -= lr * wd * w` outside the gradient, never through momentum).
`TorchSGD` implements the PyTorch update with `keras.ops`, so it runs on torch,
tensorflow and jax. `MultiStepLR` is the paper's step schedule (rule and numbers
in `keras_gdfr.training.schedule`) as a Keras `LearningRateSchedule`.

PyTorch allocates the buffer as `clone(g')` on the first step. Here the buffer
starts at zero, and `momentum * 0 + g'` equals `g'` exactly in floating point,
so no first-step special case is needed.

Which variables decay: like PyTorch's default (and the paper, which passes
`model.parameters()` to SGD), every trainable variable decays, BatchNorm's
gamma/beta and biases included. `decay_exclude` takes regular expressions searched
in each variable's `path` to exempt some, e.g. `NORM_AND_BIAS`.

The momentum buffers are ordinary optimizer variables (`optimizer.variables`,
beside the iteration counter), so they are saved and restored with checkpoints.

On torch the update of all variables is done at once by multi-tensor
`torch._foreach_*` ops (`_foreach_update`: about eight launches per step instead
of eight per variable; GDFRNet has 462 trainable variables), the same operations
in the same order as `update_step`, so the weights are bit for bit those of the
per-variable loop (tests/test_optimizer.py). It applies where the update mutates
the variables in place: not inside a `StatelessScope` (the compiled step's
`stateless_apply` traces `update_step`). ``GDFR_FOREACH_SGD=0`` before import, or
`TorchSGD.foreach = False` on one optimizer, keeps the loop (for A/B timing).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import keras
from keras import ops

from keras_gdfr.training.schedule import LABEL_SMOOTHING, MOMENTUM, WEIGHT_DECAY, rate_after


@keras.saving.register_keras_serializable(package="keras_gdfr")
class MultiStepLR(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's `MultiStepLR`, as a Keras schedule of the optimizer iteration.

    The rate is `initial_lr * gamma ** k` where `k` counts the milestones
    (in optimizer steps) that the current step has reached. Being a function of
    the step, it restores with the optimizer's iteration counter on resume.

    Args:
        initial_lr: the rate before the first milestone.
        milestones: ascending optimizer steps at which the rate is multiplied
            by `gamma` (use `from_epochs` to give them in epochs).
        gamma: the decay factor.

    Example:
        >>> schedule = MultiStepLR.from_epochs(0.1, (60, 120, 160), 0.2, steps_per_epoch=391)
        >>> float(schedule(60 * 391))  # first step of epoch 61
        0.019999999552965164
    """

    def __init__(self, initial_lr: float, milestones: Sequence[int], gamma: float):
        milestones = tuple(int(m) for m in milestones)
        if any(b <= a for a, b in zip(milestones, milestones[1:])) or any(
            m < 0 for m in milestones
        ):
            raise ValueError(
                "`milestones` must be ascending non-negative steps. "
                f"Received: milestones={milestones}"
            )
        self.initial_lr = float(initial_lr)
        self.milestones = milestones
        self.gamma = float(gamma)
        # The rate after k decays, computed once in float64 like PyTorch's.
        self._rates = [
            rate_after(k, lr=self.initial_lr, gamma=self.gamma) for k in range(len(milestones) + 1)
        ]

    @classmethod
    def from_epochs(
        cls,
        initial_lr: float,
        milestones: Sequence[int],
        gamma: float,
        steps_per_epoch: int,
    ) -> "MultiStepLR":
        """The schedule whose milestones are given in epochs of `steps_per_epoch`."""
        if steps_per_epoch < 1:
            raise ValueError(
                f"`steps_per_epoch` must be >= 1. Received: steps_per_epoch={steps_per_epoch}"
            )
        return cls(initial_lr, [m * steps_per_epoch for m in milestones], gamma)

    def __call__(self, step):
        # keras.ops only: this runs inside compiled train steps on every backend.
        step = ops.cast(step, "int32")
        if not self.milestones:
            return ops.cast(self.initial_lr, "float32")
        boundaries = ops.convert_to_tensor(self.milestones, dtype="int32")
        decays = ops.sum(ops.cast(ops.greater_equal(step, boundaries), "int32"))
        rates = ops.convert_to_tensor(self._rates, dtype="float32")
        return ops.take(rates, decays)

    def lr_at_step(self, step: int) -> float:
        """The rate at optimizer step `step`, as a Python float (no tensors)."""
        return self._rates[sum(1 for m in self.milestones if step >= m)]

    def get_config(self) -> dict:
        return {
            "initial_lr": self.initial_lr,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
        }


FOREACH_TORCH = os.environ.get("GDFR_FOREACH_SGD", "1") != "0"

# Exempts BatchNormalization's scale/offset and every bias (Keras variable names
# `gamma`, `beta`, `bias`): the common "no decay on norms and biases" practice.
NORM_AND_BIAS = (r"(^|/)(gamma|beta|bias)$",)


@keras.saving.register_keras_serializable(package="keras_gdfr")
class TorchSGD(keras.optimizers.Optimizer):
    """Stochastic gradient descent with PyTorch's momentum and L2 semantics.

    Matches `torch.optim.SGD(params, lr, momentum, weight_decay, nesterov)` with
    `dampening=0` (see the module docstring for the update rule).

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`
            (e.g. `MultiStepLR`). Defaults to `0.1`.
        momentum: momentum factor in [0, 1). 0 keeps no buffer. Defaults to `0.9`.
        weight_decay: coupled L2 factor, added to the gradient before momentum
            (PyTorch's `weight_decay`, not Keras's decoupled one). Defaults to `5e-4`.
        nesterov: PyTorch's Nesterov momentum. Defaults to `False`.
        decay_exclude: regular expressions searched in `variable.path`; matching
            variables get no weight decay. Defaults to `()` (all decay, as PyTorch).
        **kwargs: the base `keras.optimizers.Optimizer` arguments (name, clipnorm, ...).

    Example:
        >>> opt = TorchSGD(MultiStepLR.from_epochs(0.1, (60, 120, 160), 0.2, 391))
        >>> model.compile(optimizer=opt, loss="categorical_crossentropy")
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum: float = MOMENTUM,
        weight_decay: float = WEIGHT_DECAY,
        nesterov: bool = False,
        decay_exclude: Sequence[str] = (),
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum}")
        if weight_decay is None or weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum requires a momentum > 0. Received: momentum=0")
        self.momentum = float(momentum)
        # Stored under the base class's name so get_config() carries it; its
        # decoupled use is switched off in _apply_weight_decay below.
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self.decay_exclude = tuple(decay_exclude)
        self._exclude_patterns = [re.compile(p) for p in self.decay_exclude]
        self.foreach = FOREACH_TORCH  # torch: the multi-tensor update (module docstring); not saved

    def build(self, variables):
        """Create one momentum buffer per variable and fix which ones decay."""
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum:
            self.momentums = self.add_optimizer_variables(variables, "momentum")
        self._decays = [self._decays_variable(v) for v in variables]

    def _decays_variable(self, variable) -> bool:
        """Whether weight decay applies to `variable` (not matched by `decay_exclude`)."""
        path = getattr(variable, "path", variable.name)
        return not any(p.search(path) for p in self._exclude_patterns)

    def _apply_weight_decay(self, variables):
        # Keras would apply `weight_decay` decoupled here; TorchSGD couples it
        # into the gradient in update_step instead, so nothing happens here.
        return

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self._foreach_applies(trainable_variables):
            self._foreach_update(grads, trainable_variables, learning_rate)
        else:
            super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _foreach_applies(self, variables) -> bool:
        if not self.foreach or keras.backend.backend() != "torch":
            return False
        from keras.src.backend.common.stateless_scope import in_stateless_scope

        return not in_stateless_scope() and bool(variables)

    def _foreach_update(self, grads, variables, learning_rate):
        """`update_step` for all `variables` at once, in place, with `torch._foreach_*` ops (torch only)."""
        import torch

        with torch.no_grad():
            values = [v.value for v in variables]
            grads = [torch.as_tensor(g, dtype=w.dtype, device=w.device) for g, w in zip(grads, values)]
            indexes = [self._get_variable_index(v) for v in variables]
            if self.weight_decay:
                decay = [k for k, index in enumerate(indexes) if self._decays[index]]
                if decay:
                    # g + (w * wd): update_step's two roundings (an `alpha=` add fuses them)
                    decayed = torch._foreach_add([grads[k] for k in decay],
                                                 torch._foreach_mul([values[k] for k in decay], self.weight_decay))
                    for k, g in zip(decay, decayed):
                        grads[k] = g
            steps = grads
            if self.momentum:
                buffers = [self.momentums[index].value for index in indexes]
                torch._foreach_mul_(buffers, self.momentum)
                torch._foreach_add_(buffers, grads)
                steps = buffers
                if self.nesterov:
                    steps = torch._foreach_add(grads, torch._foreach_mul(buffers, self.momentum))
            # A Variable or a schedule's tensor, on the variables' device: no host sync.
            lr = ops.convert_to_tensor(learning_rate).to(device=values[0].device, dtype=values[0].dtype)
            torch._foreach_sub_(values, torch._foreach_mul(steps, lr))

    def update_step(self, gradient, variable, learning_rate):
        """One PyTorch SGD update of `variable` (see the module docstring)."""
        index = self._get_variable_index(variable)
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.weight_decay and self._decays[index]:
            gradient = ops.add(gradient, ops.multiply(variable, self.weight_decay))
        step = gradient
        if self.momentum:
            buffer = self.momentums[index]
            self.assign(buffer, ops.add(ops.multiply(buffer, self.momentum), gradient))
            step = buffer
            if self.nesterov:
                step = ops.add(gradient, ops.multiply(buffer, self.momentum))
        self.assign_sub(variable, ops.multiply(step, learning_rate))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            decay_exclude=list(self.decay_exclude),
        )
        return config


def optimizer_from_recipe(train, steps_per_epoch: int) -> TorchSGD:
    """The paper's optimizer for a recipe's `[train]` section.

    Args:
        train: the recipe's `TrainConfig` (uses `lr`, `milestones`, `lr_gamma`,
            `momentum`, `weight_decay`, `decay_exclude`).
        steps_per_epoch: optimizer steps per epoch, to put milestones in steps.
    """
    schedule = MultiStepLR.from_epochs(train.lr, train.milestones, train.lr_gamma, steps_per_epoch)
    return TorchSGD(
        schedule,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        decay_exclude=train.decay_exclude,
    )


def compile_for_training(model, optimizer, *, label_smoothing: float = LABEL_SMOOTHING, jit_compile=False) -> None:
    """Compile `model` (logits out) with the paper's loss and the metric every run reports.

    Label-smoothed cross-entropy on one-hot targets and `accuracy`: the one place
    `gdfr train` and `gdfr bench` set them. With
    `jit_compile` on torch, the train and test steps are traced once and compiled
    by `keras_gdfr.training.torch_compile` (Keras's own torch.compile path
    recompiles its layer machinery); jax and tensorflow use Keras's XLA step.
    """
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    if jit_compile:
        from keras_gdfr.training import torch_compile

        torch_compile.install(model)
