"""GDFRNet as keras.applications: include_top / pooling / preprocessing / weights, pyramid outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_gdfr import GDFRNet
from keras_gdfr.data.specs import DATASETS
from keras_gdfr.layers import ImageNormalization
from keras_gdfr.models import pyramid_outputs
from tests.helpers.weights import randomise_batchnorm



def test_pyramid_outputs_per_stage():
    model = GDFRNet("tiny", input_shape=(32, 32, 3), num_classes=10)
    shapes = {level: tuple(t.shape) for level, t in model.pyramid_outputs.items()}
    assert shapes == {"P0": (None, 32, 32, 16), "P1": (None, 16, 16, 32), "P2": (None, 8, 8, 64), "P3": (None, 4, 4, 128)}
    # The 7x7 stem (256-px datasets) starts at stride 4; no branch: stage 4's block is the top level.
    net1 = GDFRNet("tiny", input_shape=(64, 64, 3), stem="7x7", branch_depth=0, include_top=False)
    levels = pyramid_outputs(net1)
    assert {k: tuple(v.shape)[1:3] for k, v in levels.items()} == {"P2": (16, 16), "P3": (8, 8), "P4": (4, 4), "P5": (2, 2)}
    # The top level is the network's final feature map (what the head pools).
    features = keras.Model(model.input, pyramid_outputs(model))
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    top = keras.Model(model.input, model.get_layer("avg_pool").output).predict(images, verbose=0)
    p3 = features.predict(images, verbose=0)["P3"]
    np.testing.assert_allclose(p3.mean(axis=(1, 2)), top, atol=1e-6)


@pytest.mark.parametrize("pooling, shape", [(None, (None, 4, 4, 128)), ("avg", (None, 128)), ("max", (None, 128))])
def test_include_top_false_returns_features(pooling, shape):
    model = GDFRNet("tiny", input_shape=(32, 32, 3), include_top=False, pooling=pooling, num_classes=None)
    assert model.output_shape == shape
    assert "head" not in [layer.name for layer in model.layers]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_classes=None), r"num_classes must be a positive integer when include_top=True .*Received: num_classes=None"),
        (dict(num_classes=0), r"Received: num_classes=0"),
        (dict(pooling="min"), r"pooling must be None, 'avg' or 'max'. Received: pooling='min'"),
        (dict(preprocessing="mnist"), r"preprocessing must be .*Received: preprocessing='mnist'"),
        (dict(weights="nowhere.weights.h5"), r"Received: weights='nowhere.weights.h5'"),
        (dict(include_top=False, pooling="mean"), r"Received: pooling='mean'"),
    ],
)
def test_bad_options_are_one_clear_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        GDFRNet("tiny", input_shape=(16, 16, 3), **kwargs)
    assert "\n" not in str(info.value)


def test_image_normalization_against_hand_numbers():
    layer = ImageNormalization(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    raw = np.array([[[[255.0, 0.0, 51.0]]]], "float32")
    # (255/255 - 0.5)/0.5 = 1, (0 - 0.25)/0.25 = -1, (51/255 - 0)/1 = 0.2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(raw)), [[[[1.0, -1.0, 0.2]]]], atol=1e-6)
    first = ImageNormalization(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0), data_format="channels_first")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(first(raw.transpose(0, 3, 1, 2))).ravel(), [1.0, -1.0, 0.2], atol=1e-6)


def test_preprocessing_inside_equals_the_pipelines_normalisation(tmp_path):
    keras.utils.set_random_seed(3)
    plain = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=4)
    randomise_batchnorm(plain)
    plain.save_weights(tmp_path / "plain.weights.h5")
    inside = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=4, preprocessing="cifar10")
    inside.load_weights(tmp_path / "plain.weights.h5")  # the layer has no weights: same files
    raw = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3)).astype("float32")
    spec = DATASETS["cifar10"]
    normalised = (raw / 255.0 - np.array(spec.mean, "float32")) / np.array(spec.std, "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(inside(raw, training=False)),
        keras.ops.convert_to_numpy(plain(normalised, training=False)), atol=1e-5)
    tuple_stats = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=4, preprocessing=(spec.mean, spec.std))
    assert tuple_stats.get_layer("preprocessing").get_config()["mean"] == list(spec.mean)


def test_weights_from_a_trained_keras_file_give_the_backbone(tmp_path):
    keras.utils.set_random_seed(4)
    classifier = GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=4)
    randomise_batchnorm(classifier)
    classifier.save(tmp_path / "model.keras")
    backbone = GDFRNet("tiny", input_shape=(16, 16, 3), include_top=False, pooling="avg", weights=tmp_path / "model.keras")
    images = np.random.default_rng(2).random((2, 16, 16, 3), dtype="float32")
    expected = keras.Model(classifier.input, classifier.get_layer("avg_pool").output).predict(images, verbose=0)
    np.testing.assert_allclose(backbone.predict(images, verbose=0), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"layer 'head' does not fit this model"):
        GDFRNet("tiny", input_shape=(16, 16, 3), num_classes=7, weights=tmp_path / "model.keras")


def test_frozen_backbone_fit_changes_only_the_new_head():
    keras.utils.set_random_seed(5)
    backbone = GDFRNet("tiny", input_shape=(16, 16, 3), include_top=False, pooling="avg")
    backbone.trainable = False
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(3, name="new_head")(backbone(inputs, training=False))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before_backbone = [keras.ops.convert_to_numpy(w) for w in backbone.weights]  # moving statistics included
    before_head = [keras.ops.convert_to_numpy(w) for w in model.get_layer("new_head").weights]
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 16, 16, 3), dtype="float32"), rng.integers(0, 3, 8), epochs=1, batch_size=8, verbose=0)
    for before, weight in zip(before_backbone, backbone.weights):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(weight), err_msg=weight.path)
    after_head = [keras.ops.convert_to_numpy(w) for w in model.get_layer("new_head").weights]
    assert all(np.abs(b - a).max() > 0 for b, a in zip(before_head, after_head))
