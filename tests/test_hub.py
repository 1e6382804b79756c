"""The keras-hub classes (backbone, classifier, preprocessor) and the keras.applications arguments of GDFRNet."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras.src.testing import TestCase

from keras_gdfr import GDFRNet, GDFRNetBackbone, GDFRNetImageClassifier
from keras_gdfr.models.classifier import default_preprocessor
from keras_gdfr.models.preprocessor import GDFRNetImageClassifierPreprocessor, GDFRNetImageConverter
from keras_gdfr.training.optimizer import TorchSGD
from tests.helpers.weights import randomise_batchnorm

NARROW = dict(widths=(8, 8, 16, 16))
MEAN, STD = (0.5, 0.25, 0.0), (0.5, 0.25, 1.0)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(0)
    backbone = GDFRNetBackbone("tiny", frm_position="D", **NARROW)
    randomise_batchnorm(backbone)
    return GDFRNetImageClassifier(backbone, num_classes=4, preprocessor=default_preprocessor(16, MEAN, STD),
                                  class_names=["a", "b", "c", "d"], dropout=0.1)


def test_backbone_round_trip_keeps_class_pyramid_and_outputs(classifier, tmp_path):
    backbone = classifier.backbone
    backbone.save(tmp_path / "backbone.keras")
    loaded = keras.saving.load_model(tmp_path / "backbone.keras")
    assert type(loaded) is GDFRNetBackbone
    assert loaded.get_config() == backbone.get_config()
    assert loaded.architecture["frm_position"] == "D" and loaded.architecture["widths"] == [8, 8, 16, 16]
    images = np.random.default_rng(0).random((2, 16, 16, 3), dtype="float32")
    np.testing.assert_allclose(numpy(loaded(images, training=False)), numpy(backbone(images, training=False)), atol=1e-5)
    levels = {key: tuple(tensor.shape) for key, tensor in loaded.pyramid_outputs.items()}
    assert levels == {"P0": (None, None, None, 8), "P1": (None, None, None, 8), "P2": (None, None, None, 16), "P3": (None, None, None, 16)}
    pyramid = keras.Model(loaded.inputs, loaded.pyramid_outputs).predict(images, verbose=0)
    assert {key: value.shape for key, value in pyramid.items()} == {
        "P0": (2, 16, 16, 8), "P1": (2, 8, 8, 8), "P2": (2, 4, 4, 16), "P3": (2, 2, 2, 16)}
    np.testing.assert_allclose(pyramid["P3"], numpy(backbone(images, training=False)), atol=1e-5)


def test_classifier_round_trip_keeps_everything(classifier, tmp_path):
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras")
    assert type(loaded) is GDFRNetImageClassifier and type(loaded.backbone) is GDFRNetBackbone
    assert type(loaded.preprocessor) is GDFRNetImageClassifierPreprocessor
    assert loaded.class_names == ["a", "b", "c", "d"] and loaded.dropout == 0.1 and loaded.num_classes == 4
    assert sorted(loaded.pyramid_outputs) == ["P0", "P1", "P2", "P3"]
    raw = np.random.default_rng(1).integers(0, 256, (2, 20, 28, 3)).astype("float32")  # any size: resized inside
    np.testing.assert_allclose(loaded.predict(raw, verbose=0), classifier.predict(raw, verbose=0), atol=1e-5)


def test_the_preprocessor_resizes_and_normalises_as_computed_by_hand():
    converter = GDFRNetImageConverter(image_size=(2, 2), mean=MEAN, std=STD)
    image = np.zeros((1, 4, 4, 3), "float32")
    image[..., 0], image[..., 1], image[..., 2] = 255.0, 0.0, 51.0
    # Constant channels resize to themselves; (255/255 - 0.5)/0.5 = 1, (0 - 0.25)/0.25 = -1, (0.2 - 0)/1 = 0.2.
    np.testing.assert_allclose(numpy(converter(image)), np.broadcast_to([1.0, -1.0, 0.2], (1, 2, 2, 3)), atol=1e-6)
    preprocessor = GDFRNetImageClassifierPreprocessor(converter)
    x, y = preprocessor(image, np.array([3]))  # (x, y) in, as keras-hub's: maps over a dataset
    assert tuple(x.shape) == (1, 2, 2, 3) and numpy(y).tolist() == [3]
    clone = GDFRNetImageClassifierPreprocessor.from_config(preprocessor.get_config())
    np.testing.assert_allclose(numpy(clone(image)), numpy(converter(image)), atol=0)


def test_keras_layer_test_passes_for_the_image_converter():
    class Harness(TestCase):
        def runTest(self):
            pass

    Harness().run_layer_test(
        GDFRNetImageConverter, init_kwargs=dict(image_size=(4, 6), mean=MEAN, std=STD),
        input_data=np.random.default_rng(0).random((2, 8, 8, 3), dtype="float32") * 255,
        expected_output_shape=(2, 4, 6, 3), expected_num_trainable_weights=0, run_training_check=False,
    )


def test_compile_defaults_are_the_papers_optimizer_and_train_out_of_the_box():
    keras.utils.set_random_seed(2)
    model = GDFRNetImageClassifier(GDFRNetBackbone("tiny", **NARROW), num_classes=3)
    assert type(model.optimizer) is TorchSGD and float(model.optimizer.learning_rate) == pytest.approx(0.1)
    assert model.optimizer.momentum == 0.9 and model.optimizer.weight_decay == pytest.approx(5e-4)
    assert model.loss.get_config()["from_logits"] is True
    rng = np.random.default_rng(0)
    history = model.fit(rng.random((6, 16, 16, 3), dtype="float32"), rng.integers(0, 3, 6), epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    softmax = GDFRNetImageClassifier(GDFRNetBackbone("tiny", **NARROW), num_classes=3, activation="softmax")
    assert softmax.loss.get_config()["from_logits"] is False


def test_head_dtype_float32_under_a_mixed_policy():
    backbone = GDFRNetBackbone("tiny", dtype="mixed_bfloat16", **NARROW)
    assert backbone.dtype_policy.name == "mixed_bfloat16" and backbone.get_layer("stem").dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was
    default = GDFRNetImageClassifier(backbone, num_classes=3, compile=False)
    assert default.get_layer("predictions").dtype_policy.name == "float32"
    as_keras_hub = GDFRNetImageClassifier(backbone, num_classes=3, head_dtype=backbone.dtype_policy, compile=False)
    assert as_keras_hub.get_layer("predictions").dtype_policy.name == "mixed_bfloat16"


def test_input_tensor_and_classes_as_keras_applications():
    image = keras.Input((16, 16, 3))
    scaled = keras.layers.Rescaling(1 / 255.0, name="scale")(image)
    model = GDFRNet("tiny", input_tensor=scaled, classes=5, **NARROW)
    assert model.inputs[0] is image and model.output_shape == (None, 5)
    assert "scale" in [layer.name for layer in model.layers]
    direct = GDFRNet("tiny", input_tensor=image, classes=5, **NARROW)
    assert direct.inputs[0] is image
    with pytest.raises(ValueError, match=r"^classes is another name for num_classes; give one of them. Received: num_classes=7, classes=5$"):
        GDFRNet("tiny", num_classes=7, classes=5)


def test_input_shape_none_takes_any_size():
    model = GDFRNet("tiny", input_shape=None, num_classes=3, **NARROW)
    assert model.input_shape == (None, None, None, 3)
    for size in (16, 21):
        assert model.predict(np.zeros((1, size, size, 3), "float32"), verbose=0).shape == (1, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights="nowhere.weights.h5"), r"^weights file nowhere.weights.h5 does not exist \(weights must be .*\). Received: weights='nowhere.weights.h5'$"),
        (dict(weights="runs/x/model.keras"), r"^weights file runs/x/model.keras does not exist"),
        (dict(input_shape=(16, 16)), r"^input_shape must be \(height, width, channels\) .*Received: input_shape=\(16, 16\)$"),
        (dict(include_top="yes", classifier_activaton="softmax"),
         r"^Unknown GDFRNet option\(s\) \['classifier_activaton'\]. Known: architecture \[.*'widths'\], model \[.*'classifier_activation'.*'include_top'.*'head_dtype'\]"),
    ],
)
def test_builder_bad_arguments_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        GDFRNet("tiny", **kwargs)
    assert "\n" not in str(info.value)


def test_classifier_bad_arguments_are_one_line():
    backbone = GDFRNetBackbone("tiny", **NARROW)
    with pytest.raises(ValueError, match=r"^num_classes must be a positive integer. Received: num_classes=0$"):
        GDFRNetImageClassifier(backbone, num_classes=0)
    with pytest.raises(ValueError, match=r"^pooling must be 'avg' or 'max'. Received: pooling='min'$"):
        GDFRNetImageClassifier(backbone, num_classes=2, pooling="min")
    with pytest.raises(ValueError, match=r"^class_names must have num_classes=2 names. Received: 3 class_names$"):
        GDFRNetImageClassifier(backbone, num_classes=2, class_names=["a", "b", "c"])
