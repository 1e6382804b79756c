"""Every block above the layers equals its native PyTorch twin (bench/native_gdfrnet.py), by value.

The twin is written from the paper and SPEC.md, not from keras_gdfr.layers. Each Keras
block (ResidualBlock, FRRB at positions A-D, both stems, SeparableDown, the branch for
every depth and FGCM layout, the merge, the head) is fed the same inputs as the twin's
module, which takes the Keras weights by variable path: outputs agree in inference mode
(randomised BatchNorm statistics and affine terms) and training mode (batch statistics),
and after the training-mode call every BatchNorm's moving statistics are PyTorch's
momentum-0.1 update (tests/helpers/twin.py). Small maps (4-16 px, 8-32 channels),
channels_first as the twin; one whole model in channels_last. Whole named variants are
compared in tests/test_variants.py.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.helpers.twin import assert_twin_matches
from tests.helpers.weights import randomise_batchnorm

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="the twin is PyTorch")
CF = "channels_first"
FRM_ARGS = dict(reduction=4, upsample="transposed", upsample_kernel=4, downsample="depthwise")
WIDTHS = (8, 16, 16, 32)


def _images(*shape, seed=3):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _compare_layer(layer, twin, x, seed=1):
    """Build `layer` on `x`, randomise its BN, and compare with `twin` on the same input."""
    import torch

    layer(x)  # builds
    randomise_batchnorm(layer, seed, affine=True)
    return assert_twin_matches(layer, twin, lambda training: layer(x, training=training),
                               lambda: twin(torch.as_tensor(x)))


BLOCK_SHAPES = [(8, 8, 1, 8), (8, 16, 2, 8), (8, 16, 1, 7), (8, 16, 2, 7)]  # (in, out, stride, size)


@pytest.mark.parametrize("cin,cout,stride,size", BLOCK_SHAPES, ids=lambda v: str(v))
def test_residual_block(cin, cout, stride, size):
    from native_gdfrnet import Block

    from keras_gdfr.layers import ResidualBlock

    keras.utils.set_random_seed(0)
    layer = ResidualBlock(cout, strides=stride, data_format=CF, name="blk")
    [out] = _compare_layer(layer, Block("blk", cin, cout, stride), _images(3, cin, size, size))
    assert out.shape == (3, cout, -(-size // stride), -(-size // stride)) and out.min() == 0  # after the ReLU


@pytest.mark.parametrize("position", "ABCD")
@pytest.mark.parametrize("cin,cout,stride,size", [(8, 8, 1, 8), (8, 16, 2, 7)], ids=lambda v: str(v))
def test_frrb_at_every_position(position, cin, cout, stride, size):
    from native_gdfrnet import Block

    from keras_gdfr.layers import FRRB

    keras.utils.set_random_seed(0)
    layer = FRRB(cout, strides=stride, frm_position=position, data_format=CF, name="blk", **FRM_ARGS)
    twin_args = dict(reduction=4, upsample="transposed", k=4, downsample="depthwise")
    twin = Block("blk", cin, cout, stride, twin_args, position)
    _compare_layer(layer, twin, _images(3, cin, size, size))


@pytest.mark.parametrize("kind,size", [("3x3", 8), ("3x3", 7), ("7x7", 16), ("7x7", 15)])
def test_stem(kind, size):
    from native_gdfrnet import Stem as TwinStem

    from keras_gdfr.layers import Stem

    keras.utils.set_random_seed(0)
    layer = Stem(8, kind=kind, data_format=CF, name="stem")
    _compare_layer(layer, TwinStem("stem", 8, kind), _images(3, 3, size, size))


@pytest.mark.parametrize("size", [8, 7])
def test_separable_down(size):
    from native_gdfrnet import SeparableDown as TwinDown

    from keras_gdfr.layers import SeparableDown

    keras.utils.set_random_seed(0)
    layer = SeparableDown(16, data_format=CF, name="branch_down1")
    _compare_layer(layer, TwinDown("branch_down1", 8, 16), _images(3, 8, size, size))


BRANCHES = [(d, layout, "global") for d in (1, 2, 3) for layout in "ABCD"] + [(2, "A", "local")]


@pytest.mark.parametrize("depth,layout,similarity", BRANCHES, ids=lambda v: str(v))
def test_branch_wiring_and_merge(depth, layout, similarity):
    """`_branch` (the builder's own wiring: FGCM per layout, FOM per level, the down path, the add)."""
    import torch
    from native_gdfrnet import Branch

    from keras_gdfr.models.gdfrnet import _branch

    keras.utils.set_random_seed(0)
    sizes = (16, 8, 4, 2) if depth != 3 else (15, 8, 4, 2)  # one odd stage-1 map
    inputs = [keras.Input((w, s, s)) for w, s in zip(WIDTHS, sizes)]
    model = keras.Model(inputs, _branch(inputs, WIDTHS, depth, layout, similarity, CF))
    randomise_batchnorm(model, 1, affine=True)
    xs = [_images(3, w, s, s, seed=i) for i, (w, s) in enumerate(zip(WIDTHS, sizes))]
    twin = Branch(WIDTHS, depth, layout, similarity)
    assert_twin_matches(model, twin, lambda training: model(xs, training=training),
                        lambda: twin([torch.as_tensor(x) for x in xs]))


def test_head_pools_the_merged_map_then_dense():
    import torch
    from native_gdfrnet import build, load_keras_weights

    from keras_gdfr.models import GDFRNet

    keras.utils.set_random_seed(0)
    model = GDFRNet("tiny", input_shape=(3, 16, 16), num_classes=7, data_format=CF, widths=WIDTHS)
    features = keras.Model(model.inputs, [model.get_layer("branch_merge").output, model.output])
    merged, logits = (keras.ops.convert_to_numpy(t) for t in features([_images(2, 3, 16, 16)]))
    twin = build("tiny", 7, widths=WIDTHS)
    load_keras_weights(twin, model)
    with torch.no_grad():
        twin_logits = twin.head(torch.as_tensor(merged).mean(dim=(2, 3))).numpy()
    assert logits.shape == (2, 7)
    np.testing.assert_allclose(twin_logits, logits, rtol=1e-5, atol=1e-5)


def test_whole_model_in_channels_last():
    """The twin is NCHW; the Keras model built channels_last gives the same logits and BN updates."""
    import torch
    from native_gdfrnet import build

    from keras_gdfr.models import GDFRNet

    keras.utils.set_random_seed(0)
    overrides = dict(depths=(2, 1, 1, 1), widths=WIDTHS, reduction=4)
    model = GDFRNet("gdfrnet", input_shape=(16, 16, 3), num_classes=10, data_format="channels_last", **overrides)
    randomise_batchnorm(model, 1, affine=True)
    x = _images(4, 3, 16, 16)
    twin = build("gdfrnet", 10, **overrides)
    nhwc = x.transpose(0, 2, 3, 1)
    assert_twin_matches(model, twin, lambda training: model(nhwc, training=training), lambda: twin(torch.as_tensor(x)))


def test_unmatched_weights_are_named():
    from native_gdfrnet import build, load_keras_weights

    from keras_gdfr.models import GDFRNet

    model = GDFRNet("tiny", input_shape=(3, 16, 16), num_classes=10, data_format=CF)
    with pytest.raises(KeyError, match="stage1_block1/frm"):
        load_keras_weights(build("tiny", 10, frm=False), model)
