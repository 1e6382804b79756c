"""The native PyTorch twin (bench/native_gdfrnet.py) equals the Keras GDFRNet, variant by variant.

The twin is written from the paper and SPEC.md, not from keras_gdfr.layers; with the
Keras model's weights loaded by name it must give the same logits in inference mode
(moving statistics randomised, so BN's inference path counts) and in training mode
(batch statistics). This is the model-level value test: stems, blocks, FRRB positions,
branch wiring and depth, FGCM layouts, the merge, odd sizes.
"""

from __future__ import annotations

import pathlib
import sys

import keras
import numpy as np
import pytest

from tests.helpers.weights import randomise_batchnorm

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="the twin is PyTorch")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))

NARROW = dict(depths=(1, 1, 1, 1), widths=(8, 16, 16, 32))
CASES = [
    ("tiny", {}, 32),
    ("tiny", {"frm_position": "A"}, 16),
    ("tiny", {"frm_position": "B"}, 16),
    ("tiny", {"frm_position": "D"}, 16),
    ("tiny", {"stem": "7x7"}, 32),
    ("tiny", {"branch_depth": 1}, 16),
    ("tiny", {"branch_depth": 3}, 16),
    ("tiny", {"fgcm_layout": "B"}, 16),
    ("tiny", {"fgcm_layout": "C"}, 15),  # odd size: FRM's transposed conv crops
    ("net1", NARROW, 32),
    ("net4", NARROW, 16),
    ("bilinear", {**NARROW, "depths": (2, 1, 1, 1), "reduction": 4}, 16),
    ("gdfrnet-dense", {**NARROW, "upsample_kernel": 6}, 16),
]



@pytest.mark.parametrize("variant,overrides,size", CASES, ids=lambda v: str(v))
def test_twin_equals_keras(variant, overrides, size):
    import torch
    from native_gdfrnet import build, load_keras_weights

    from keras_gdfr.models import GDFRNet

    keras.utils.set_random_seed(0)
    model = GDFRNet(variant, input_shape=(3, size, size), num_classes=10, data_format="channels_first", **overrides)
    randomise_batchnorm(model, 1)
    twin = build(variant, 10, **overrides)
    assert load_keras_weights(twin, model) == len(model.weights)
    x = np.random.default_rng(3).normal(size=(4, 3, size, size)).astype("float32")
    for training in (False, True):
        twin.train(training)
        with torch.no_grad():
            mine = twin(torch.as_tensor(x)).numpy()
        theirs = keras.ops.convert_to_numpy(model(x, training=training))
        assert np.abs(theirs).max() > 0.05
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4, err_msg=f"training={training}")


def test_unmatched_weights_are_named():
    from native_gdfrnet import build, load_keras_weights

    from keras_gdfr.models import GDFRNet

    model = GDFRNet("tiny", input_shape=(3, 16, 16), num_classes=10, data_format="channels_first")
    with pytest.raises(KeyError, match="stage1_block1/frm"):
        load_keras_weights(build("tiny", 10, frm=False), model)
