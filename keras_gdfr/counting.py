"""Parameters and multiply-adds (MACs) of a model, layer by layer.

True MACs count one multiply-add per weight application:
- Conv2D: out_h * out_w * C_out * k_h * k_w * C_in / groups
- DepthwiseConv2D: out_h * out_w * C * multiplier * k_h * k_w
- Conv2DTranspose: in_h * in_w * C_in * C_out * k_h * k_w (each input pixel
  scatters one k x k x C_out patch). Some FLOP counters instead count it like
  a conv over the output pixels: stride^2 = 4x this at stride 2; that
  convention is reported separately as `macs_tconv_output_convention`
  because it is what reproduces the paper's Table 8 figure.
- FGCM's fixed LoG: H * W * C * 7 * 7 (depthwise).
- Dense: C_in * C_out.
BatchNorm, activations, pooling and element-wise products are not counted
(the usual convention of the papers' tables).
"""

from __future__ import annotations

import dataclasses
import math

import keras

from keras_gdfr.layers import FGCM


@dataclasses.dataclass(frozen=True)
class LayerCount:
    """One leaf layer's count."""

    path: str
    kind: str
    output_shape: tuple
    params: int
    macs: int
    macs_tconv_output_convention: int


@dataclasses.dataclass(frozen=True)
class ModelCount:
    """A model's parameters and MACs for its input size, with the per-layer rows.

    `params` counts the trainable weights, as PyTorch's `numel` over
    `parameters()` does (the paper's convention); `non_trainable_params` are
    BatchNorm's moving statistics and FGCM's fixed kernels (PyTorch buffers).
    """

    params: int
    non_trainable_params: int
    macs: int
    macs_tconv_output_convention: int
    layers: tuple[LayerCount, ...]

    def table(self) -> str:
        """The per-layer rows as aligned text."""
        lines = [f"{'layer':58s} {'kind':20s} {'params':>11s} {'MACs':>14s}"]
        for row in self.layers:
            lines.append(f"{row.path:58s} {row.kind:20s} {row.params:11,d} {row.macs:14,d}")
        lines.append(f"{'total':58s} {'':20s} {self.params:11,d} {self.macs:14,d}")
        return "\n".join(lines)


def _spatial(shape, data_format):
    return (shape[1], shape[2]) if data_format == "channels_last" else (shape[2], shape[3])


def _channels(shape, data_format):
    return shape[-1] if data_format == "channels_last" else shape[1]


def _leaf_macs(layer, input_shape) -> tuple[int, int, tuple]:
    """(true MACs, output-pixel-convention MACs, output shape) of one leaf layer."""
    output_shape = tuple(layer.compute_output_shape(input_shape))
    if isinstance(layer, keras.layers.Dense):
        macs = int(input_shape[-1]) * layer.units
        return macs, macs, output_shape
    if isinstance(layer, FGCM):
        kh, kw = layer.log_kernel.shape[:2]
        macs = math.prod(_spatial(output_shape, layer.data_format)) * _channels(output_shape, layer.data_format) * kh * kw
        return macs, macs, output_shape
    if not isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.Conv2DTranspose):
        return 0, 0, output_shape
    df = layer.data_format
    kh, kw = layer.kernel_size
    c_in, c_out = _channels(input_shape, df), _channels(output_shape, df)
    out_pixels = math.prod(_spatial(output_shape, df))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        macs = out_pixels * c_in * layer.depth_multiplier * kh * kw
        return macs, macs, output_shape
    if isinstance(layer, keras.layers.Conv2DTranspose):
        in_pixels = math.prod(_spatial(input_shape, df))
        true = in_pixels * c_in * c_out * kh * kw
        # The output-pixel convention counts a conv over the (cropped) up-sampled map.
        return true, true * math.prod(layer.strides), output_shape
    macs = out_pixels * c_out * kh * kw * c_in // layer.groups
    return macs, macs, output_shape


def _leaves(layer, prefix: str):
    """(path, layer) for every layer without sublayers, plus FGCM (its LoG is a weight, not a layer)."""
    children = [child for child in layer._layers if isinstance(child, keras.layers.Layer)]
    if isinstance(layer, FGCM):
        yield prefix, layer
    if not children:
        if not isinstance(layer, FGCM):
            yield prefix, layer
        return
    for child in children:
        if isinstance(child, keras.layers.InputLayer):
            continue
        yield from _leaves(child, f"{prefix}/{child.name}" if prefix else child.name)


def count_model(model: keras.Model) -> ModelCount:
    """Count a built model's parameters and MACs (for batch size 1), layer by layer."""
    rows = []
    for path, layer in _leaves(model, ""):
        build_config = layer.get_build_config() or {}
        input_shape = build_config.get("input_shape")
        if input_shape is None or isinstance(input_shape, list | tuple) and input_shape and isinstance(input_shape[0], list | tuple):
            macs = conv_macs = 0  # multi-input merges (Add) and unbuilt layers do no MACs
            output_shape = ()
        else:
            macs, conv_macs, output_shape = _leaf_macs(layer, tuple(input_shape))
        # An FGCM row holds only its fixed LoG; its conv/BN weights have their own rows.
        params = 0 if isinstance(layer, FGCM) else sum(math.prod(w.shape) for w in layer.trainable_weights)
        rows.append(LayerCount(path, type(layer).__name__, output_shape, params, macs, conv_macs))
    return ModelCount(
        params=int(sum(math.prod(w.shape) for w in model.trainable_weights)),
        non_trainable_params=int(sum(math.prod(w.shape) for w in model.non_trainable_weights)),
        macs=sum(r.macs for r in rows),
        macs_tconv_output_convention=sum(r.macs_tconv_output_convention for r in rows),
        layers=tuple(rows),
    )


def count_variant(variant: str, image_size: int = 32, num_classes: int = 10, **overrides) -> ModelCount:
    """Build `variant` for `image_size` x `image_size` RGB inputs and count it."""
    from keras_gdfr.models import GDFRNet

    shape = (image_size, image_size, 3)
    if keras.config.image_data_format() == "channels_first":
        shape = (3, image_size, image_size)
    return count_model(GDFRNet(variant, input_shape=shape, num_classes=num_classes, **overrides))
