"""The conv layers our modules build inside themselves, run as bare PyTorch convolutions on torch.

A GDFRNet module (FRM, FRRB, FGCM, FOM, ...) calls its sublayers from its own `call`, which
Keras's `Layer.__call__` has already wrapped: inputs cast to the compute dtype, autocast and
name scopes set, `training` resolved. Wrapping every sublayer again costs ~75 us a conv and
~190 us a BatchNorm on this CPU, and Keras's torch `conv` ops add ~100 us more a conv
(argument conversion, padding checks, and in channels_last two activation copies: to NCHW
memory and back to channels-last memory) (docs/performance.md). On torch, for a built
sublayer given a real tensor and no other argument, these classes call
`torch.nn.functional.conv2d` / `conv_transpose2d` themselves, with the same kernel view,
memory format and dtype Keras's op would use, and the bias added inside the op as
`torch.nn.Conv2d` does (Keras adds it as a separate op: one more activation-sized pass
forward and its own reduction backward, ~0.5 ms a full-size FOM conv at batch 64 here; the
sums are the same, rounded once more or less: equal to float32 rounding); anything else (symbolic tensors,
`meta` shape inference, other backends, a mask or extra arguments, options Keras's op treats
specially) goes through Keras's `__call__` as before. The layers are Keras's own otherwise:
same constructor, config, variables, paths and saved weights.

`torch_call(x, padding)` also takes PyTorch's symmetric padding, which Keras's
`padding="same"` cannot express at stride 2 (it pads only at the end): `_utils.conv_padded`
and FRM's transposed conv use it so that the convolution pads (or crops) itself, with no
padded copy of the activation.

`GDFR_DIRECT_CALL=0` (before import) or `DIRECT = False` turns the direct path off (A/B timing);
`GDFR_DIRECT_CALL=call` (or `FUNCTIONAL = False`) keeps only the skipped `__call__` and runs
Keras's `call` (the path of fb7a0c6).
"""

from __future__ import annotations

import os

import keras

_SWITCH = os.environ.get("GDFR_DIRECT_CALL", "1")
DIRECT = _SWITCH != "0"
FUNCTIONAL = _SWITCH not in ("0", "call")


def calls_directly(layer: keras.layers.Layer, inputs) -> bool:
    """Whether `layer` may skip `Layer.__call__` for `inputs`: torch, built, a real tensor, and
    nothing left for `__call__` to set up (as inside a parent module's call)."""
    if not DIRECT or not layer.built or keras.backend.backend() != "torch":
        return False
    import torch

    if not isinstance(inputs, torch.Tensor) or inputs.device.type == "meta":
        return False
    return _set_up_by_parent(layer, inputs)


def _set_up_by_parent(layer: keras.layers.Layer, inputs) -> bool:
    """`inputs` already in the layer's compute dtype and, under a mixed policy, its autocast scope
    active: what `Layer.__call__` would do. Otherwise (the layer called on its own with float32
    inputs under mixed_bfloat16, say) `__call__` casts, as Keras does."""
    from keras.src.backend.common.variables import get_autocast_scope

    policy = layer.dtype_policy
    if policy.compute_dtype != policy.variable_dtype:
        scope = get_autocast_scope()
        if scope is None or scope.dtype != policy.compute_dtype:
            return False
    return keras.backend.standardize_dtype(inputs.dtype) == policy.compute_dtype


class DirectCall:
    """Mixin for Keras's 2-D conv layers: `__call__(inputs)` runs PyTorch's op (or `call`) directly
    when `calls_directly` allows."""

    def __call__(self, inputs, *args, **kwargs):
        if not args and not kwargs and calls_directly(self, inputs):
            padding = self._same_padding()
            if FUNCTIONAL and padding is not None and self._functional_applies():
                return self.torch_call(inputs, padding)
            return self.call(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def runs_torch_op(self, inputs) -> bool:
        """Whether `torch_call` stands for Keras's call on `inputs` (the direct path, supported options)."""
        return (FUNCTIONAL and calls_directly(self, inputs) and self._same_padding() is not None
                and self._functional_applies())

    def _functional_applies(self) -> bool:
        """Options Keras's torch op handles as PyTorch's would: linear activation, no LoRA or
        quantization (the padding is `_same_padding`'s to check)."""
        return (
            self.activation is keras.activations.linear
            and not getattr(self, "lora_enabled", False)
            and getattr(self, "quantization_mode", None) is None
        )

    def _same_padding(self):
        """The symmetric padding PyTorch takes for `self.padding`, or None where Keras's differs."""
        if self.padding == "valid":
            return 0
        kernel = self.kernel_size
        if all(s == 1 for s in self.strides) and all(d == 1 for d in self.dilation_rate) \
                and all(k % 2 for k in kernel):
            return tuple((k - 1) // 2 for k in kernel)
        return None  # stride > 1 or an even kernel: Keras's "same" pads asymmetrically

    def _torch_kernel(self):
        """The kernel as PyTorch's op takes it: Keras's permuted view (contiguous: `_utils.torch_kernel_layout`)."""
        kernel = self.kernel.value
        return kernel.permute(3, 2, 0, 1)

    def torch_call(self, inputs, padding):
        """The layer's output by PyTorch's conv with symmetric `padding` (an int or one per spatial dim)."""
        import torch.nn.functional as F

        channels_last = self.data_format == "channels_last"
        x = _to_nchw(inputs) if channels_last else inputs
        kernel = self._torch_kernel()
        if channels_last:
            kernel = _channels_last_memory(kernel)  # as Keras's op does: cuDNN/oneDNN pick NHWC kernels
        groups = x.shape[1] // kernel.shape[1]
        y = F.conv2d(x, kernel, self._torch_bias(), stride=self.strides, padding=padding,
                     dilation=self.dilation_rate, groups=groups)
        return y.permute(0, 2, 3, 1) if channels_last else y

    def _torch_bias(self):
        return self.bias.value if self.use_bias else None


def _to_nchw(x):
    """An NHWC tensor as the NCHW tensor PyTorch's conv takes, in channels-last memory, as Keras's op makes it.

    A contiguous NHWC tensor's permuted view already is that memory (Keras copies it to NCHW and
    back). With a dimension of size 1 the memory formats are ambiguous (several strides are
    "contiguous" for both) and oneDNN's result can then differ in the last bit, so those (small)
    tensors take Keras's two copies.
    """
    x = x.permute(0, 3, 1, 2)
    if 1 in x.shape:
        x = x.contiguous()
    return _channels_last_memory(x)


def _channels_last_memory(x):
    import torch

    if x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous(memory_format=torch.channels_last)


@keras.saving.register_keras_serializable(package="keras_gdfr")
class DirectConv2D(DirectCall, keras.layers.Conv2D):
    """`keras.layers.Conv2D`, run as `torch.nn.functional.conv2d` on torch inside our modules."""


@keras.saving.register_keras_serializable(package="keras_gdfr")
class DirectDepthwiseConv2D(DirectCall, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D`, run as a grouped `conv2d` on torch inside our modules."""

    def _torch_kernel(self):
        kernel = self.kernel.value  # (kh, kw, C, multiplier) -> (C * multiplier, 1, kh, kw), as Keras's op
        kernel = kernel.reshape(kernel.shape[0], kernel.shape[1], 1, kernel.shape[2] * kernel.shape[3])
        return kernel.permute(3, 2, 0, 1)


@keras.saving.register_keras_serializable(package="keras_gdfr")
class DirectConv2DTranspose(DirectCall, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose`, run as `torch.nn.functional.conv_transpose2d` on torch inside our modules."""

    def _functional_applies(self) -> bool:
        # Keras's "valid" output is (n - 1) * s + max(k, s): PyTorch's natural size only where k >= s.
        return (super()._functional_applies() and self.padding == "valid" and self.output_padding is None
                and all(k >= s for k, s in zip(self.kernel_size, self.strides)))

    def torch_call(self, inputs, padding):
        """The layer's output by PyTorch's transposed conv; `padding` crops that many pixels off every side."""
        import torch.nn.functional as F

        channels_last = self.data_format == "channels_last"
        x = inputs.permute(0, 3, 1, 2).contiguous() if channels_last else inputs  # as Keras's op
        y = F.conv_transpose2d(x, self._torch_kernel(), self._torch_bias(), stride=self.strides, padding=padding,
                               dilation=self.dilation_rate)
        return y.permute(0, 2, 3, 1) if channels_last else y
