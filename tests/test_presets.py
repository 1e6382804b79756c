"""Presets: a trained run becomes one (`gdfr preset save`), loads by name, directory or URL, and predicts
as the run does; unknown names, corrupt files, hash and class-count mismatches are refused in one line."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_gdfr
from keras_gdfr import GDFRNet, GDFRNetBackbone, GDFRNetImageClassifier
from keras_gdfr import presets as P
from keras_gdfr.predict import predict_files, predict_preset_files
from keras_gdfr.provenance import git_commit
from keras_gdfr.saving import load_run_model
from keras_gdfr.training.events import read_events

REPO = pathlib.Path(__file__).resolve().parents[1]
NAME = "tiny_test_cifar10"
TRAINED_AT = "0123456789abcdef0123456789abcdef01234567"  # the commit the run records (GDFR_COMMIT)


def gdfr(*args, timeout=600, **env_extra):
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO), **env_extra}
    return subprocess.run([sys.executable, "-m", "keras_gdfr.cli", *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cifar10_zip):
    """A real (tiny, narrow, one epoch on a few images) `gdfr train` run."""
    run = tmp_path_factory.mktemp("run") / "run"
    done = gdfr("train", "recipes/cifar10.toml", "--variant", "tiny", "--set", "model.overrides.widths=[8,8,16,16]",
                "--batch-size", 20, "--data", cifar10_zip, "--limit-train", 20, "--limit-test", 10, "--epochs", 1,
                "--run-dir", run, GDFR_COMMIT=TRAINED_AT)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def preset_dir(run_dir, tmp_path_factory):
    """`gdfr preset save RUN NAME --dest DIR --zip`, as the command line runs it."""
    dest = tmp_path_factory.mktemp("presets")
    done = gdfr("preset", "save", run_dir, NAME, "--dest", dest, "--zip")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"wrote {dest / NAME}: GDFRNetImageClassifier, cifar10 test top-1 ")
    digest = done.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    return dest / NAME, digest


@pytest.fixture
def images(tmp_path):
    """Three JPEG files of different sizes (the preset resizes as the run's test split reads them)."""
    rng = np.random.default_rng(0)
    files = []
    for index, (h, w) in enumerate([(32, 32), (40, 56), (20, 24)]):
        path = tmp_path / f"image{index}.jpg"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        files.append(path)
    return files


@pytest.fixture
def shipped(preset_dir, tmp_path, monkeypatch):
    """The preset as if shipped inside the package (keras_gdfr/presets/<name>/)."""
    folder = tmp_path / "shipped"
    shutil.copytree(preset_dir[0], folder / NAME)
    monkeypatch.setattr(P, "SHIPPED_DIR", folder)
    return folder / NAME


def test_saved_preset_records_the_run(run_dir, preset_dir):
    folder, _ = preset_dir
    assert sorted(p.name for p in folder.iterdir()) == sorted([*P.CHECKED_FILES, P.METADATA_FILE])
    metadata = json.loads((folder / P.METADATA_FILE).read_text())
    evaluation = json.loads((run_dir / "eval.json").read_text())
    recipe = json.loads((run_dir / "recipe.json").read_text())
    assert metadata["test_top1"] == evaluation["accuracy"] and metadata["test_examples"] == 10
    assert metadata["dataset"] == "cifar10" and metadata["variant"] == "tiny" and metadata["image_size"] == 32
    assert metadata["recipe"] == recipe and metadata["dtype"] == "float32"
    assert metadata["class_names"] == json.loads((run_dir / "class_names.json").read_text())["class_names"]
    # Provenance: the commit the run recorded when it started, and the one that saved the preset.
    start = next(event for event in read_events(run_dir) if event["event"] == "run_start")
    assert start["commit"] == TRAINED_AT and start["versions"]["keras"] == keras.__version__
    assert metadata["commit"] == TRAINED_AT and metadata["commit_saved"] == git_commit()
    assert metadata["date_trained"].endswith("Z")
    assert metadata["files"] == {name: P.sha256(folder / name) for name in P.CHECKED_FILES}
    # Portable: the configs leave data format and dtype to the loading machine.
    config = json.loads((folder / P.CONFIG_FILE).read_text())["config"]
    assert config["data_format"] is None and config["dtype"] is None and config["widths"] == [8, 8, 16, 16]


def test_preset_classifier_gives_the_runs_outputs(run_dir, preset_dir):
    folder, _ = preset_dir
    run = load_run_model(run_dir)
    classifier = GDFRNetImageClassifier.from_preset(folder)
    assert type(classifier.backbone) is GDFRNetBackbone and classifier.class_names == run.class_names
    raw = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(classifier.predict(raw, verbose=0), run.model.predict(raw, verbose=0), atol=1e-5)
    # The backbone alone: the run's final feature map (normalised input, as the preprocessor gives it).
    backbone = GDFRNetBackbone.from_preset(folder)
    normalised = keras.ops.convert_to_numpy(classifier.preprocessor(raw))
    features = keras.Model(run.model.input, run.model.get_layer("avg_pool").input).predict(raw, verbose=0)
    np.testing.assert_allclose(backbone.predict(normalised, verbose=0), features, atol=1e-5)


def test_predict_with_a_preset_gives_the_runs_top3(run_dir, shipped, images):
    by_run = predict_files(run_dir, images, top_k=3)
    by_preset = predict_preset_files(NAME, images, top_k=3)
    assert [[t["class"] for t in row["top"]] for row in by_preset] == [[t["class"] for t in row["top"]] for row in by_run]
    for run_row, preset_row in zip(by_run, by_preset):
        np.testing.assert_allclose([t["probability"] for t in preset_row["top"]],
                                   [t["probability"] for t in run_row["top"]], atol=1e-5)
    done = gdfr("predict", "--preset", shipped, images[0], "--top-k", "3", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    top = json.loads(done.stdout)["top"]
    assert [t["class"] for t in top] == [t["class"] for t in by_run[0]["top"]]
    np.testing.assert_allclose([t["probability"] for t in top], [t["probability"] for t in by_run[0]["top"]], atol=1e-5)


def test_shipped_preset_by_name(shipped):
    assert list(keras_gdfr.list_presets()) == [NAME]
    assert keras_gdfr.list_presets()[NAME]["dataset"] == "cifar10"
    classifier = GDFRNetImageClassifier.from_preset(NAME)
    # keras.applications style: weights= a preset name (the same architecture and classes).
    model = GDFRNet("tiny", widths=(8, 8, 16, 16), input_shape=(32, 32, 3), weights=NAME, preprocessing="cifar10")
    raw = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(raw, verbose=0), classifier.predict(raw, verbose=0), atol=1e-5)
    # A new head for fine-tuning: the backbone's weights, num_classes fresh (as keras-hub does).
    fresh = GDFRNetImageClassifier.from_preset(NAME, num_classes=3)
    assert fresh.output_shape == (None, 3) and fresh.class_names is None
    np.testing.assert_array_equal(fresh.backbone.get_layer("stem").get_weights()[0],
                                  classifier.backbone.get_layer("stem").get_weights()[0])


def test_zipped_preset_by_file_url_with_checksum(preset_dir, tmp_path, monkeypatch):
    folder, digest = preset_dir
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    url = (folder.parent / f"{NAME}.zip").as_uri()
    classifier = GDFRNetImageClassifier.from_preset(url, file_hash=digest)
    assert classifier.num_classes == 10
    wrong = "0" * 64
    with pytest.raises(P.PresetError, match=r"the download does not match file_hash='0{64}' .*nothing loaded") as info:
        GDFRNetImageClassifier.from_preset(url, file_hash=wrong)
    assert "\n" not in str(info.value)
    # The refused download is not kept for the next load to use unchecked.
    assert not (tmp_path / "keras-home" / "keras_gdfr_presets" / f"{NAME}.zip").exists()


def test_unknown_preset_name_suggests_the_known_one(shipped):
    with pytest.raises(ValueError) as info:
        GDFRNetImageClassifier.from_preset("tiny_test_cifar1")
    assert str(info.value) == (
        f"unknown preset 'tiny_test_cifar1'; did you mean '{NAME}'? Known presets: {NAME} "
        "(or give a preset directory, or the URL of a zipped one)"
    )
    with pytest.raises(ValueError, match=r"^unknown preset 'resnet50'. Known presets: "):
        GDFRNet("tiny", weights="resnet50")


def test_class_count_and_architecture_mismatches_name_both(shipped, tmp_path):
    with pytest.raises(ValueError, match=rf"^weights='{NAME}' has 10 classes, this model num_classes=7: give num_classes=10"):
        GDFRNet("tiny", widths=(8, 8, 16, 16), num_classes=7, weights=NAME)
    with pytest.raises(ValueError, match=rf"^weights='{NAME}' is a GDFRNet 'tiny' of another architecture .*: widths=\[8, 8, 16, 16\] there, \[16, 32, 64, 128\] here$"):
        GDFRNet("tiny", weights=NAME)
    # A preset directory whose head weights are not those of its task.json (10 classes there, 4 here).
    edited = tmp_path / "edited"
    shutil.copytree(shipped, edited)
    task = json.loads((edited / P.TASK_FILE).read_text())
    task["config"]["num_classes"], task["config"]["class_names"] = 4, None
    (edited / P.TASK_FILE).write_text(json.dumps(task))
    metadata = json.loads((edited / P.METADATA_FILE).read_text())
    metadata["files"][P.TASK_FILE] = P.sha256(edited / P.TASK_FILE)
    (edited / P.METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(P.PresetError, match=r"its head does not fit this classifier: layer 'predictions' has shapes \[\(16, 10\), \(10,\)\] in the preset, \[\(16, 4\), \(4,\)\] here"):
        GDFRNetImageClassifier.from_preset(edited)


def test_corrupt_preset_files_are_refused(shipped, tmp_path):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(shipped, corrupt)
    weights = corrupt / P.BACKBONE_WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(P.PresetError, match=r"model.weights.h5 is corrupt \(its sha256 is not the one in metadata.json\); nothing loaded$"):
        GDFRNetBackbone.from_preset(corrupt)
    # Without the recorded checksums, a file that is not HDF5 still fails in one line.
    metadata = json.loads((corrupt / P.METADATA_FILE).read_text())
    del metadata["files"]
    (corrupt / P.METADATA_FILE).write_text(json.dumps(metadata))
    weights.write_bytes(b"not an HDF5 file")
    with pytest.raises(P.PresetError, match=r"model.weights.h5 does not load into this backbone") as info:
        GDFRNetBackbone.from_preset(corrupt)
    assert "\n" not in str(info.value)


def test_float16_storage_halves_the_weights(run_dir, preset_dir, tmp_path):
    import h5py

    folder, _ = preset_dir
    done = gdfr("preset", "save", run_dir, "half", "--dest", tmp_path, "--dtype", "float16")
    assert done.returncode == 0, done.stderr[-2000:]
    half = tmp_path / "half"
    assert json.loads((half / P.METADATA_FILE).read_text())["dtype"] == "float16"
    for name in (P.BACKBONE_WEIGHTS_FILE, P.TASK_WEIGHTS_FILE):
        with h5py.File(half / name) as file:
            kinds = []
            file.visititems(lambda _, obj: kinds.append(obj.dtype.name) if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" else None)
        assert kinds and set(kinds) == {"float16"}, name
    # Smaller on disk (not half: HDF5's own overhead per array weighs on a model this small).
    assert (half / P.BACKBONE_WEIGHTS_FILE).stat().st_size < (folder / P.BACKBONE_WEIGHTS_FILE).stat().st_size
    raw = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    full = GDFRNetImageClassifier.from_preset(folder).predict(raw, verbose=0)
    np.testing.assert_allclose(GDFRNetImageClassifier.from_preset(half).predict(raw, verbose=0), full, atol=0.05)
    # An existing preset is kept: one line, exit 2; --force replaces it.
    again = gdfr("preset", "save", run_dir, "half", "--dest", tmp_path)
    assert again.returncode == 2 and again.stderr.strip() == f"error: {half} already exists (--force replaces it)"
    assert json.loads((half / P.METADATA_FILE).read_text())["dtype"] == "float16"
    bad = gdfr("preset", "save", tmp_path / "nowhere", "x", "--dest", tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'nowhere'}: neither a run directory nor a .keras model file"


def test_readme_fine_tuning_of_a_new_head(shipped, tmp_path):
    """The README's few lines: a user's ImageFolder, the preset's frozen backbone, a new head."""
    from keras_gdfr.predict import load_image_folder

    rng = np.random.default_rng(4)
    for name in ("cats", "dogs"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "photos" / name / f"{index}.jpg")
    images, labels, names = load_image_folder(tmp_path / "photos", image_size=32)
    assert images.shape == (6, 32, 32, 3) and labels.tolist() == [0, 0, 0, 1, 1, 1] and names == ["cats", "dogs"]
    model = GDFRNetImageClassifier.from_preset(NAME, num_classes=len(names), class_names=names)
    model.backbone.trainable = False
    model.compile()
    backbone_before = [np.array(w) for w in model.backbone.get_weights()]
    head_before = model.get_layer("predictions").get_weights()[0].copy()
    model.fit(images, labels, epochs=1, batch_size=6, verbose=0)
    for before, after in zip(backbone_before, model.backbone.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert np.abs(model.get_layer("predictions").get_weights()[0] - head_before).max() > 0
    model.save_to_preset(tmp_path / "mine")
    again = GDFRNetImageClassifier.from_preset(tmp_path / "mine")
    assert again.class_names == ["cats", "dogs"]
    np.testing.assert_allclose(again.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match=r"no class folders"):
        load_image_folder(tmp_path / "photos" / "cats", image_size=32)
