"""GDFRNet: the backbone of FRRBs, the feature optimization branch, the builder, the variants.

Reads top to bottom like a timm model file: the stages, the branch, then the
builder `GDFRNet(variant=..., **overrides)`. The named configurations live in
`keras_gdfr.variants` (one table for the whole package).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_gdfr.layers import FGCM, FOM, FRRB, ResidualBlock, SeparableDown, Stem
from keras_gdfr.layers import _utils as U
from keras_gdfr.layers.frrb import FRM_POSITIONS
from keras_gdfr.variants import DEFAULTS, variant_config

FGCM_LAYOUTS = ("A", "B", "C", "D")
MAX_BRANCH_DEPTH = 3


def _fgcm_levels(layout: str, depth: int) -> tuple[set[int], bool]:
    """Which branch levels get an FGCM before their FOM, and whether the
    stage-3 down-sampling path gets one too (Table 5; Fig. 12 is not in the
    text, this reading is documented in docs/architecture.md)."""
    levels = {"A": {1, 2, 3}, "B": {1}, "C": {2}, "D": {1, 2, 3}}[layout]
    return {level for level in levels if level <= depth}, layout == "D"


def _stage(x, stage: int, depth: int, filters: int, strides: int, block_args: dict | None, df: str):
    """One backbone stage: `depth` blocks, the first with `strides`."""
    for index in range(depth):
        name = f"stage{stage}_block{index + 1}"
        stride = strides if index == 0 else 1
        if block_args is None:
            x = ResidualBlock(filters, strides=stride, data_format=df, name=name)(x)
        else:
            x = FRRB(filters, strides=stride, data_format=df, name=name, **block_args)(x)
    return x


def _branch(stage_outputs: Sequence, widths: Sequence[int], depth: int, layout: str, similarity: str, df: str):
    """The feature optimization branch (section 1.3.4, Fig. 7).

    Levels 1..depth keep stage 1's resolution: FGCM (per `layout`) on the
    running high-resolution map, then FOM with stage (level+1)'s output as the
    low-resolution input. Then depthwise-separable stride-2 steps bring it to
    stage 4's resolution and width (stage widths on the way); it joins stage
    4's output by addition (the paper does not name the merge).
    """
    fgcm_levels, fgcm_on_path = _fgcm_levels(layout, depth)
    feature = stage_outputs[0]
    for level in range(1, depth + 1):
        high = FGCM(data_format=df, name=f"branch{level}_fgcm")(feature) if level in fgcm_levels else feature
        feature = FOM(similarity=similarity, data_format=df, name=f"branch{level}_fom")([high, stage_outputs[level]])
    if fgcm_on_path:
        feature = FGCM(data_format=df, name="branch_path_fgcm")(feature)
    for step, filters in enumerate(widths[1:], start=1):
        feature = SeparableDown(filters, data_format=df, name=f"branch_down{step}")(feature)
    return keras.layers.Add(name="branch_merge")([stage_outputs[-1], feature])


def _validate(config: dict) -> None:
    checks = [
        (config["stem"] in ("3x3", "7x7"), "stem must be '3x3' or '7x7'", "stem"),
        (len(config["depths"]) == 4 and all(int(d) >= 1 for d in config["depths"]),
         "depths must be 4 positive integers", "depths"),
        (len(config["widths"]) == 4 and all(int(w) >= 1 for w in config["widths"]),
         "widths must be 4 positive integers", "widths"),
        (config["frm_position"] in FRM_POSITIONS, f"frm_position must be one of {FRM_POSITIONS}", "frm_position"),
        (0 <= int(config["branch_depth"]) <= MAX_BRANCH_DEPTH,
         f"branch_depth must be 0-{MAX_BRANCH_DEPTH}", "branch_depth"),
        (config["fgcm_layout"] in FGCM_LAYOUTS, f"fgcm_layout must be one of {FGCM_LAYOUTS}", "fgcm_layout"),
    ]
    for ok, message, key in checks:
        if not ok:
            raise ValueError(f"{message}. Received: {key}={config[key]!r}")


def GDFRNet(
    variant: str = "gdfrnet",
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    classifier_activation: str | None = None,
    data_format: str | None = None,
    name: str | None = None,
    **overrides,
) -> keras.Model:
    """Build a GDFRNet (or any of the paper's variants) as a functional Keras model.

    Args:
        variant: a name from `keras_gdfr.list_variants()`: `"gdfrnet"` (= `"net5"`),
            `"net1"`-`"net5"` (Table 9), `"frm-a"`-`"frm-d"` (Table 4),
            `"fgcm-a"`-`"fgcm-d"` (Table 5), `"branch-a"`-`"branch-d"` (Table 6),
            `"tconv-k2"`-`"tconv-k10"` (Table 3), `"r2"`-`"r32"` (Fig. 8),
            `"bilinear"`, `"gdfrnet-dense"`, `"fom-local"`, `"tiny"`.
            Defaults to `"gdfrnet"`.
        input_shape: the image shape in the active data format, e.g. `(32, 32, 3)`
            channels_last or `(3, 32, 32)` channels_first. Any size works,
            odd ones included.
        num_classes: int. Size of the classification head.
        classifier_activation: activation of the head; `None` returns logits
            (what training uses). Defaults to `None`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        name: model name. Defaults to the variant name.
        **overrides: any architecture knob, over the variant's values:
            `stem` ("3x3"/"7x7"), `depths`, `widths` (4 ints each), `frm` (bool),
            `frm_position` ("A"-"D"), `reduction` (r), `upsample`
            ("transposed"/"bilinear"), `upsample_kernel` (k), `frm_downsample`
            ("depthwise"/"dense"), `branch_depth` (0-3), `fgcm_layout`
            ("A"-"D"), `fom_similarity` ("global"/"local").

    Returns:
        A `keras.Model` from images to `(B, num_classes)` logits (or
        activations). Layers are named `stem`, `stage{s}_block{b}`,
        `branch{l}_fgcm`, `branch{l}_fom`, `branch_down{i}`, `branch_merge`,
        `avg_pool`, `head`.

    Example:
    >>> model = GDFRNet("tiny", input_shape=(32, 32, 3), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    config = variant_config(variant)
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown GDFRNet option(s) {unknown}. Known: {sorted(DEFAULTS)}. Received: {overrides}")
    config.update(overrides)
    _validate(config)
    df = U.resolve_data_format(data_format)
    depths, widths = tuple(int(d) for d in config["depths"]), tuple(int(w) for w in config["widths"])
    block_args = None
    if config["frm"]:
        block_args = dict(
            frm_position=config["frm_position"],
            reduction=config["reduction"],
            upsample=config["upsample"],
            upsample_kernel=config["upsample_kernel"],
            downsample=config["frm_downsample"],
        )

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = Stem(widths[0], kind=config["stem"], data_format=df, name="stem")(inputs)
    stage_outputs = []
    for stage, (depth, filters) in enumerate(zip(depths, widths), start=1):
        x = _stage(x, stage, depth, filters, 1 if stage == 1 else 2, block_args, df)
        stage_outputs.append(x)
    if int(config["branch_depth"]) > 0:
        x = _branch(stage_outputs, widths, int(config["branch_depth"]), config["fgcm_layout"], config["fom_similarity"], df)
    x = keras.layers.GlobalAveragePooling2D(data_format=df, name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, activation=classifier_activation, name="head")(x)
    model = keras.Model(inputs, outputs, name=name or variant.replace("-", "_"))
    return model
