"""GDFRNet: the backbone of FRRBs, the feature optimization branch, the builder, the variants.

Reads top to bottom like a timm model file: the stages, the branch, then the
builder `GDFRNet(variant=..., **overrides)`. The named configurations live in
`keras_gdfr.variants` (one table for the whole package).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras

from keras_gdfr.layers import FGCM, FOM, FRRB, ImageNormalization, ResidualBlock, SeparableDown, Stem
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



POOLINGS = (None, "avg", "max")


def _check_head_args(include_top, num_classes, pooling) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if include_top and (isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1):
        raise ValueError(
            "num_classes must be a positive integer when include_top=True "
            f"(include_top=False builds the backbone alone). Received: num_classes={num_classes!r}"
        )


def normalization_stats(preprocessing) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) for `preprocessing`: None, a dataset name of `keras_gdfr.data.specs`, or (mean, std)."""
    from keras_gdfr.data.specs import DATASETS

    if preprocessing is None:
        return None
    if isinstance(preprocessing, str):
        if preprocessing not in DATASETS:
            raise ValueError(
                f"preprocessing must be None, a dataset name ({', '.join(DATASETS)}) or (mean, std). "
                f"Received: preprocessing={preprocessing!r}"
            )
        spec = DATASETS[preprocessing]
        return tuple(spec.mean), tuple(spec.std)
    try:
        mean, std = preprocessing
        return tuple(float(m) for m in mean), tuple(float(s) for s in std)
    except (TypeError, ValueError):
        raise ValueError(
            f"preprocessing must be None, a dataset name or (mean, std). Received: preprocessing={preprocessing!r}"
        ) from None


def head_dtype_policy(head_dtype, policy=None):
    """The head's policy: `head_dtype`, else float32 when `policy` (default: the global one) is
    mixed (float32 logits, as Keras's mixed-precision guide advises), else `policy`."""
    if head_dtype is not None:
        return head_dtype
    policy = policy or keras.config.dtype_policy()
    return "float32" if policy.compute_dtype != policy.variable_dtype else policy


def pyramid_outputs(model: keras.Model) -> dict:
    """The stage features of a GDFRNet (built here or loaded), keyed as keras-hub backbones do.

    Returns `{"P{l}": tensor}` where the feature map has stride 2**l to the input:
    stage 1..3 outputs (their last block) and the final feature map (stage 4, merged
    with the feature optimization branch when there is one). With the 3x3 stem the
    levels are P0-P3 (strides 1, 2, 4, 8), with the 7x7 stem P2-P5 (4-32).
    `keras.Model(model.inputs, pyramid_outputs(model))` extracts them all at once.
    """
    first_level = 0 if model.get_layer("stem").kind == "3x3" else 2
    blocks = {}
    for layer in model.layers:
        if layer.name.startswith("stage") and "_block" in layer.name:
            blocks[int(layer.name[5:layer.name.index("_")])] = layer  # the last block of each stage wins
    names = {stage: blocks[stage].name for stage in (1, 2, 3, 4)}
    if any(layer.name == "branch_merge" for layer in model.layers):
        names[4] = "branch_merge"
    return {f"P{first_level + stage - 1}": model.get_layer(names[stage]).output for stage in (1, 2, 3, 4)}


def resolve_architecture(variant: str, overrides: dict) -> dict:
    """The variant's knobs with `overrides` over them, checked (ValueError naming the bad one)."""
    config = variant_config(variant)
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown GDFRNet option(s) {unknown}. Known: {sorted(DEFAULTS)}. Received: {overrides}")
    config.update(overrides)
    _validate(config)
    return config


def image_input(input_shape, input_tensor, data_format: str):
    """(model inputs, the tensor the network starts from), as keras.applications takes them.

    `input_shape=None` means any height and width (3 channels); `input_tensor` (a
    `keras.Input`, a layer's output, or a backend tensor) replaces the input layer.
    """
    if input_shape is None:
        input_shape = (None, None, 3) if data_format == "channels_last" else (3, None, None)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels) in the data format, or None. Received: input_shape={input_shape!r}")
    if input_tensor is None:
        image = keras.Input(shape=input_shape, name="image")
        return image, image
    if not keras.backend.is_keras_tensor(input_tensor):
        input_tensor = keras.Input(tensor=input_tensor, shape=input_shape, name="image")
    return keras.utils.get_source_inputs(input_tensor), input_tensor


def build_features(x, config: dict, data_format: str, stats=None):
    """The network from images to its final feature map (stage 4, merged with the branch)."""
    df = data_format
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
    if stats is not None:
        x = ImageNormalization(*stats, data_format=df, name="preprocessing")(x)
    x = Stem(widths[0], kind=config["stem"], data_format=df, name="stem")(x)
    stage_outputs = []
    for stage, (depth, filters) in enumerate(zip(depths, widths), start=1):
        x = _stage(x, stage, depth, filters, 1 if stage == 1 else 2, block_args, df)
        stage_outputs.append(x)
    if int(config["branch_depth"]) > 0:
        x = _branch(stage_outputs, widths, int(config["branch_depth"]), config["fgcm_layout"], config["fom_similarity"], df)
    return x


def GDFRNet(
    variant: str = "gdfrnet",
    input_shape: Sequence[int] | None = (32, 32, 3),
    num_classes: int | None = 10,
    classifier_activation: str | None = None,
    data_format: str | None = None,
    name: str | None = None,
    *,
    include_top: bool = True,
    pooling: str | None = None,
    preprocessing=None,
    weights=None,
    head_dtype=None,
    input_tensor=None,
    classes: int | None = None,
    **overrides,
) -> keras.Model:
    """Build a GDFRNet (or any of the paper's variants) as a functional Keras model.

    In the `keras.applications` style: a classifier by default, a backbone with
    `include_top=False` (plus `pooling`), optional preprocessing inside the model,
    weights from a file or a preset, `input_tensor` and `classes`. The stage features
    are `model.pyramid_outputs` (see `pyramid_outputs`). It returns a flat functional
    `keras.Model` (every layer at the top level, as training and `gdfr viz` need); the
    keras-hub classes `GDFRNetBackbone` and `GDFRNetImageClassifier` keep their class,
    `pyramid_outputs` and presets through saving.

    Args:
        variant: a name from `keras_gdfr.list_variants()`: `"gdfrnet"` (= `"net5"`),
            `"net1"`-`"net5"` (Table 9), `"frm-a"`-`"frm-d"` (Table 4),
            `"fgcm-a"`-`"fgcm-d"` (Table 5), `"branch-a"`-`"branch-d"` (Table 6),
            `"tconv-k2"`-`"tconv-k10"` (Table 3), `"r2"`-`"r32"` (Fig. 8),
            `"bilinear"`, `"gdfrnet-dense"`, `"fom-local"`, `"tiny"`.
            Defaults to `"gdfrnet"`.
        input_shape: the image shape in the active data format, e.g. `(32, 32, 3)`
            channels_last or `(3, 32, 32)` channels_first. Any size works,
            odd ones included; `None` leaves height and width open (3 channels).
            Ignored with `input_tensor`. Defaults to `(32, 32, 3)`.
        num_classes: int. Size of the classification head (needed with
            `include_top=True`, ignored without). Defaults to `10`.
        classes: keras.applications' name for `num_classes` (give one of them).
        classifier_activation: activation of the head; `None` returns logits
            (what training uses). Defaults to `None`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        name: model name. Defaults to the variant name.
        include_top: whether to end in the pooled classification head.
            `False` returns the final feature map (or, with `pooling`, its pooled
            vector). Defaults to `True`.
        pooling: `None`, `"avg"` or `"max"`: the global pooling before the head
            (`None` there means `"avg"`, the paper's) or, with `include_top=False`,
            at the end (`None`: no pooling, a 4-D feature map). Defaults to `None`.
        preprocessing: `None` (the model takes normalised images, as the training
            pipeline feeds them), a dataset name (`"cifar10"`, ..., its mean/std from
            `keras_gdfr.data.specs`) or `(mean, std)`: the model then takes raw
            0-255 RGB images (an `ImageNormalization` layer named `preprocessing`).
            Defaults to `None`.
        weights: `None` (random initialisation), a preset name
            (`keras_gdfr.list_presets()`) or directory, or a path: a `.weights.h5`
            saved from a model of the same configuration, or a `.keras` model (e.g. a
            run's `model.keras`) whose layers are copied by name (so a trained
            classifier gives its backbone to `include_top=False`). A preset or
            `.keras` source must have the same architecture (and, with the head, the
            same number of classes). Defaults to `None`.
        head_dtype: dtype policy of the head. Defaults to float32 under a mixed
            global policy (float32 logits, as Keras's mixed-precision guide
            advises), else the global policy. (keras-hub 0.32's ImageClassifier
            keeps the head in the backbone's policy; pass it to get that.)
        input_tensor: a tensor (`keras.Input` or a layer's output) to use as the
            image input, as keras.applications takes it. Defaults to `None`.
        **overrides: any architecture knob, over the variant's values:
            `stem` ("3x3"/"7x7"), `depths`, `widths` (4 ints each), `frm` (bool),
            `frm_position` ("A"-"D"), `reduction` (r), `upsample`
            ("transposed"/"bilinear"), `upsample_kernel` (k), `frm_downsample`
            ("depthwise"/"dense"), `branch_depth` (0-3), `fgcm_layout`
            ("A"-"D"), `fom_similarity` ("global"/"local").

    Returns:
        A `keras.Model` from images to `(B, num_classes)` logits (or
        activations), or to features with `include_top=False`. Layers are named
        `preprocessing` (when asked), `stem`, `stage{s}_block{b}`,
        `branch{l}_fgcm`, `branch{l}_fom`, `branch_down{i}`, `branch_merge`,
        `avg_pool` (or `max_pool`), `head`.

    Example:
    >>> model = GDFRNet("tiny", input_shape=(32, 32, 3), num_classes=10)
    >>> model.output_shape
    (None, 10)
    >>> backbone = GDFRNet("tiny", input_shape=(32, 32, 3), include_top=False, pooling="avg")
    >>> backbone.output_shape
    (None, 128)
    >>> {level: tuple(t.shape) for level, t in backbone.pyramid_outputs.items()}["P3"]
    (None, 4, 4, 128)
    """
    num_classes = _num_classes(num_classes, classes)
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"Unknown GDFRNet option(s) {unknown}. Known: architecture {sorted(DEFAULTS)}, "
            f"model {list(BUILDER_ARGUMENTS)}. Received: {overrides}"
        )
    config = resolve_architecture(variant, overrides)
    _check_head_args(include_top, num_classes, pooling)
    stats = normalization_stats(preprocessing)
    df = U.resolve_data_format(data_format)
    inputs, x = image_input(input_shape, input_tensor, df)
    x = build_features(x, config, df, stats)
    pool = pooling or ("avg" if include_top else None)
    if pool == "avg":
        x = keras.layers.GlobalAveragePooling2D(data_format=df, name="avg_pool")(x)
    elif pool == "max":
        x = keras.layers.GlobalMaxPooling2D(data_format=df, name="max_pool")(x)
    if include_top:
        x = keras.layers.Dense(int(num_classes), activation=classifier_activation, dtype=head_dtype_policy(head_dtype), name="head")(x)
    model = keras.Model(inputs, x, name=name or variant.replace("-", "_"))
    if weights is not None:
        from keras_gdfr.models.weights import load_builder_weights

        load_builder_weights(model, weights, config)
    set_pyramid_outputs(model)
    return model


def set_pyramid_outputs(model: keras.Model) -> None:
    """`model.pyramid_outputs` as a plain dict: not tracked by Keras (which would wrap it in a
    TrackedDict that jax cannot return from `keras.Model(model.inputs, model.pyramid_outputs)`)."""
    object.__setattr__(model, "pyramid_outputs", pyramid_outputs(model))


# The builder's own arguments (named by the error for an unknown option, beside the knobs).
BUILDER_ARGUMENTS = (
    "variant", "input_shape", "input_tensor", "num_classes", "classes", "classifier_activation",
    "data_format", "name", "include_top", "pooling", "preprocessing", "weights", "head_dtype",
)


def _num_classes(num_classes, classes):
    """`num_classes`, or keras.applications' `classes` when that is given (both: they must agree)."""
    if classes is None:
        return num_classes
    if num_classes not in (10, classes):  # 10: num_classes' default, i.e. not given
        raise ValueError(
            f"classes is another name for num_classes; give one of them. Received: num_classes={num_classes!r}, classes={classes!r}"
        )
    return classes
