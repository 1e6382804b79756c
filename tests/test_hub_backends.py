"""The keras-hub classes round-trip through `.keras` on torch, tensorflow and jax: class, attributes,
`pyramid_outputs` and outputs (1e-5), the files written on torch loading on the others and back."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_gdfr import GDFRNetBackbone, GDFRNetImageClassifier
from keras_gdfr.models.classifier import default_preprocessor
from tests.helpers.weights import randomise_batchnorm

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """backbone.keras and classifier.keras written here (the test process's backend), with inputs and outputs."""
    folder = tmp_path_factory.mktemp("hub")
    keras.utils.set_random_seed(0)
    backbone = GDFRNetBackbone("tiny", widths=(8, 8, 16, 16), fgcm_layout="D")
    randomise_batchnorm(backbone)
    classifier = GDFRNetImageClassifier(backbone, num_classes=3, preprocessor=default_preprocessor(16, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)),
                                        class_names=["cat", "dog", "eel"])
    raw = np.random.default_rng(0).integers(0, 256, (2, 24, 20, 3)).astype("float32")
    normalised = keras.ops.convert_to_numpy(classifier.preprocessor(raw))
    np.save(folder / "inputs.npy", raw)
    np.save(folder / "normalised.npy", normalised)
    backbone.save(folder / "backbone.keras")
    classifier.save(folder / "classifier.keras")
    pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs).predict(normalised, verbose=0)
    reference = {"classifier": classifier.predict(raw, verbose=0), "backbone": backbone.predict(normalised, verbose=0),
                 **{f"pyramid_{k}": v for k, v in pyramid.items()}}
    return folder, reference, backbone.architecture


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_round_trip_on_every_backend(saved, backend):
    folder, reference, architecture = saved
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "tests.helpers.hub_round_trip", str(folder)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads((folder / f"{backend}.json").read_text())
    for when in ("loaded", "again"):
        assert facts[when] == {
            "backbone_class": "GDFRNetBackbone", "classifier_class": "GDFRNetImageClassifier",
            "inner_backbone_class": "GDFRNetBackbone", "preprocessor_class": "GDFRNetImageClassifierPreprocessor",
            "class_names": ["cat", "dog", "eel"], "pyramid_levels": ["P0", "P1", "P2", "P3"], "architecture": architecture,
        }, when
    outputs = np.load(folder / f"{backend}.npz")
    for key, expected in reference.items():
        np.testing.assert_allclose(outputs[key], expected, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(outputs["classifier_again"], reference["classifier"], atol=1e-5)
    np.testing.assert_allclose(outputs["backbone_again"], reference["backbone"], atol=1e-5)
