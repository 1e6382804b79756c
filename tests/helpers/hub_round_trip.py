"""Subprocess helper: load the keras-hub classes' `.keras` files on one backend, save and reload them there.

Usage: python -m tests.helpers.hub_round_trip DIR (KERAS_BACKEND set by the caller). DIR holds
backbone.keras, classifier.keras (saved on another backend), inputs.npy (raw images) and
normalised.npy. Writes DIR/<backend>.npz (outputs after loading and after a second round
trip on this backend, pyramid outputs) and DIR/<backend>.json (classes and attributes seen).
"""

import json
import pathlib
import sys

import keras
import numpy as np

import keras_gdfr.models.classifier  # noqa: F401  (registers the classes, as `import keras_hub` does for keras-hub's)


def facts(backbone, classifier) -> dict:
    return {
        "backbone_class": type(backbone).__name__,
        "classifier_class": type(classifier).__name__,
        "inner_backbone_class": type(classifier.backbone).__name__,
        "preprocessor_class": type(classifier.preprocessor).__name__,
        "class_names": classifier.class_names,
        "pyramid_levels": sorted(backbone.pyramid_outputs),
        "architecture": backbone.architecture,
    }


def main(folder):
    folder = pathlib.Path(folder)
    backend = keras.backend.backend()
    raw, normalised = np.load(folder / "inputs.npy"), np.load(folder / "normalised.npy")
    backbone = keras.saving.load_model(folder / "backbone.keras")
    classifier = keras.saving.load_model(folder / "classifier.keras")
    outputs = {
        "classifier": classifier.predict(raw, verbose=0),
        "backbone": backbone.predict(normalised, verbose=0),
        **{f"pyramid_{k}": v for k, v in keras.Model(backbone.inputs, backbone.pyramid_outputs).predict(normalised, verbose=0).items()},
    }
    backbone.save(folder / f"backbone-{backend}.keras")
    classifier.save(folder / f"classifier-{backend}.keras")
    again_backbone = keras.saving.load_model(folder / f"backbone-{backend}.keras")
    again = keras.saving.load_model(folder / f"classifier-{backend}.keras")
    outputs["classifier_again"] = again.predict(raw, verbose=0)
    outputs["backbone_again"] = again_backbone.predict(normalised, verbose=0)
    np.savez(folder / f"{backend}.npz", **outputs)
    (folder / f"{backend}.json").write_text(json.dumps({"loaded": facts(backbone, classifier), "again": facts(again_backbone, again)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
