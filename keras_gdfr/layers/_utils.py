"""Small helpers shared by the paper's layers: data-format axes and PyTorch-style padding."""

from __future__ import annotations

import keras
from keras import ops

from keras_gdfr.layers.batch_norm import BatchNorm


def resolve_data_format(data_format: str | None) -> str:
    """`data_format` or, when None, Keras's global `image_data_format()`."""
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "data_format must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format!r}"
        )
    return data_format


def channel_axis(data_format: str) -> int:
    return -1 if data_format == "channels_last" else 1


def spatial_axes(data_format: str) -> tuple[int, int]:
    """The (height, width) axes of a rank-4 tensor."""
    return (1, 2) if data_format == "channels_last" else (2, 3)


def spatial_size(shape, data_format: str) -> tuple:
    h_axis, w_axis = spatial_axes(data_format)
    return shape[h_axis], shape[w_axis]


def channels_of(shape, data_format: str) -> int:
    return shape[channel_axis(data_format)]


def with_channels(shape, channels: int, data_format: str) -> tuple:
    """`shape` with its channel dimension replaced."""
    shape = list(shape)
    shape[channel_axis(data_format)] = channels
    return tuple(shape)


def with_spatial(shape, height, width, data_format: str) -> tuple:
    """`shape` with its spatial dimensions replaced."""
    shape = list(shape)
    h_axis, w_axis = spatial_axes(data_format)
    shape[h_axis], shape[w_axis] = height, width
    return tuple(shape)


def strided_size(size, kernel: int, stride: int, pad: int):
    """Output length of a convolution with symmetric `pad`, as in PyTorch."""
    if size is None:
        return None
    return (size + 2 * pad - kernel) // stride + 1


def pad_spatial(x, pad: int, data_format: str):
    """Zero-pad both spatial dims by `pad` on each side.

    Keras's `padding="same"` with stride 2 pads only at the end for even sizes;
    PyTorch (the paper's framework) pads both sides. Padding explicitly and then
    convolving with `padding="valid"` reproduces PyTorch's sampling grid.
    """
    if pad == 0:
        return x
    widths = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
    if data_format == "channels_first":
        widths = [[0, 0], [0, 0], [pad, pad], [pad, pad]]
    return ops.pad(x, widths)


def conv_padded(conv, x, pad: int, data_format: str):
    """`conv(pad_spatial(x, pad))` for a `"valid"` conv layer of `direct_call`.

    On torch's direct path the convolution pads symmetrically itself (PyTorch's `padding=`):
    the same sums, no padded copy of the activation forward and no slice of its gradient backward.
    """
    if conv.runs_torch_op(x):
        return conv.torch_call(x, pad)
    return conv(pad_spatial(x, pad, data_format))


def batch_norm(data_format: str, name: str, dtype=None) -> keras.layers.BatchNormalization:
    """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5).

    `dtype` is the parent layer's dtype policy (sublayers compute in the parent's dtype).

    A `keras.layers.BatchNormalization` subclass with a fused kernel on the torch
    backend (`keras_gdfr.layers.batch_norm`); same variables and semantics.
    """
    return BatchNorm(
        axis=channel_axis(data_format), momentum=0.9, epsilon=1e-5, dtype=dtype, name=name
    )


def build_sublayer(layer: keras.layers.Layer, input_shape) -> tuple:
    """Build `layer` for `input_shape` and return its output shape."""
    layer.build(input_shape)
    torch_kernel_layout(layer)
    return tuple(layer.compute_output_shape(input_shape))


# The permutation Keras's torch backend applies to a layer's kernel before PyTorch's conv
# (keras/src/backend/torch/nn.py: `_transpose_conv_kernel`, after a reshape for depthwise).
_TORCH_KERNEL_ORDER = {
    keras.layers.Conv2D: (3, 2, 0, 1),  # (kh, kw, in, out) -> (out, in, kh, kw)
    keras.layers.Conv2DTranspose: (3, 2, 0, 1),  # (kh, kw, out, in) -> (in, out, kh, kw)
    keras.layers.DepthwiseConv2D: (2, 3, 0, 1),  # (kh, kw, in, mult) -> (in, mult, kh, kw)
}
DEPTHWISE_TORCH_ORDER = _TORCH_KERNEL_ORDER[keras.layers.DepthwiseConv2D]


def torch_kernel_layout(layer: keras.layers.Layer) -> None:
    """torch: store a built conv layer's kernel in PyTorch's memory order, its shape and values unchanged.

    Keras keeps conv kernels as (kh, kw, in, out) (depthwise: (kh, kw, in, mult)) and its
    torch `conv` hands PyTorch a permuted view, which PyTorch's convolution copies to
    contiguous memory on every call (and autograd permutes the gradient back); a depthwise
    conv given the permuted view runs its forward and backward about 2x slower on this
    CPU (docs/performance.md). Stored as a view of a buffer in PyTorch's order, the
    permuted view is already contiguous. Shape, values, variable path and saved files are
    the same (a `.keras` file from torch loads on jax and tensorflow: tests/test_backends.py);
    assign and load copy values into the buffer, keeping its layout.
    """
    order = next((o for kind, o in _TORCH_KERNEL_ORDER.items() if isinstance(layer, kind)), None)
    if keras.backend.backend() != "torch" or order is None or not layer.built:
        return
    store_in_torch_order(layer.kernel, order)


def store_in_torch_order(variable, order: tuple[int, ...]) -> None:
    """torch: keep `variable`'s shape and values in memory such that `value.permute(*order)` is contiguous."""
    if keras.backend.backend() != "torch":
        return
    import torch

    value = variable.value
    if value.ndim != len(order) or value.permute(*order).is_contiguous():
        return
    inverse = tuple(order.index(axis) for axis in range(len(order)))
    stored = value.detach().permute(*order).contiguous().permute(*inverse)
    variable._value = torch.nn.Parameter(stored, requires_grad=variable.trainable)


def padded_shape(shape, pad: int, data_format: str) -> tuple:
    """`shape` after `pad_spatial(x, pad)` (unknown sizes stay unknown)."""
    height, width = spatial_size(shape, data_format)
    grow = lambda size: None if size is None else size + 2 * pad  # noqa: E731
    return with_spatial(shape, grow(height), grow(width), data_format)
