"""`.keras` and `.weights.h5` round trips reproduce outputs exactly; configs round-trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_gdfr import GDFRNet
from keras_gdfr.layers import FGCM, FOM, FRM, FRRB, ImageNormalization, ResidualBlock, SeparableDown, Stem


@pytest.fixture(scope="module")
def model_and_inputs():
    keras.utils.set_random_seed(1)
    model = GDFRNet("tiny", input_shape=(32, 32, 3), num_classes=10, frm_position="D", upsample_kernel=6)
    images = np.random.default_rng(1).random((2, 32, 32, 3), dtype="float32")
    return model, images, keras.ops.convert_to_numpy(model(images, training=False))


def test_keras_file_round_trip(model_and_inputs, tmp_path):
    model, images, expected = model_and_inputs
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(images, training=False)), expected)
    assert type(loaded.get_layer("stage1_block1")) is FRRB
    assert loaded.get_layer("stage1_block1").frm_position == "D"


def test_weights_file_round_trip(model_and_inputs, tmp_path):
    model, images, expected = model_and_inputs
    model.save_weights(tmp_path / "model.weights.h5")
    fresh = GDFRNet("tiny", input_shape=(32, 32, 3), num_classes=10, frm_position="D", upsample_kernel=6)
    fresh.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fresh(images, training=False)), expected)


@pytest.mark.parametrize(
    "layer",
    [
        FRM(reduction=4, upsample="bilinear", upsample_kernel=6, downsample="dense", name="frm"),
        FGCM(gaussian_size=3, sigma=0.8),
        FOM(similarity="local"),
        FRRB(32, strides=2, frm_position="B", reduction=8),
        ResidualBlock(16, strides=2),
        SeparableDown(24),
        Stem(8, kind="7x7"),
        ImageNormalization(mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), data_format="channels_first"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"keras_gdfr>{type(layer).__name__}"
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config


def test_bad_layer_arguments_name_the_value():
    with pytest.raises(ValueError, match=r"Received: upsample='nearest'"):
        FRM(upsample="nearest")
    with pytest.raises(ValueError, match=r"Received: frm_position='E'"):
        FRRB(16, frm_position="E")
    with pytest.raises(ValueError, match=r"Received: similarity='cosine'"):
        FOM(similarity="cosine")
    with pytest.raises(ValueError, match=r"Received: data_format='nhwc'"):
        FGCM(data_format="nhwc")
