"""A run's model takes raw images: predict = eval's predictions on real images; exports reload within 1e-5."""

from __future__ import annotations

import importlib.resources
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from keras_gdfr import export as ex
from keras_gdfr.data.specs import GTSRB_SIGNS, WORDNET_NAMES, readable_class_names
from keras_gdfr.predict import predict_files
from keras_gdfr.saving import has_preprocessing, load_model, load_run_model, pipeline_model, save_run_model
from keras_gdfr.training.events import CLASS_NAMES_FILE, MODEL_FILE, RECIPE_FILE
from keras_gdfr.training.recipe import load_recipe
from keras_gdfr.training.run import build_model, load_splits, log_softmax, predict_logits
from tests.helpers.weights import randomise_batchnorm


def predict_split(model, data, recipe):
    """Probabilities as gdfr eval computes them."""
    return np.exp(log_softmax(predict_logits(model, data, recipe)))


REPO = pathlib.Path(__file__).resolve().parents[1]



def _extract(paths, folder: pathlib.Path) -> list[pathlib.Path]:
    """The files named `<zip>:<member>` (SplitData.paths) written under `folder`, in order."""
    files = []
    for index, shown in enumerate(paths):
        archive, member = shown.split(".zip:")
        with zipfile.ZipFile(archive + ".zip") as zf:
            target = folder / f"{index:03d}-{pathlib.Path(member).name}"
            target.write_bytes(zf.read(member))
        files.append(target)
    return files


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory, cifar10_zip):
    """A run directory as `gdfr train` leaves it (save_run_model is the run's final save), on real CIFAR-10."""
    run_dir = tmp_path_factory.mktemp("run")
    recipe = load_recipe("cifar10", variant="tiny", data=str(cifar10_zip), limit_train=100, limit_test=30)
    (run_dir / RECIPE_FILE).write_text(json.dumps(recipe.to_dict()))
    train, test = load_splits(recipe)
    keras.utils.set_random_seed(0)
    model = build_model(recipe, test.num_classes)
    # A few steps on normalised real images: a model whose answers differ between images.
    spec = recipe.spec
    normalised = (train.images / 255.0 - np.array(spec.mean)) / np.array(spec.std)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(normalised.astype("float32"), train.labels, epochs=3, batch_size=25, verbose=0)
    save_run_model(model, recipe, run_dir, test.class_names)
    return run_dir, recipe, test, model


def test_predict_on_real_images_matches_evals_predictions(cifar_run, tmp_path):
    run_dir, recipe, test, _ = cifar_run
    loaded = load_model(run_dir / MODEL_FILE, compile=False)
    assert has_preprocessing(loaded)
    # What `gdfr eval` computes: the pipeline's normalised images into the model without its preprocessing.
    eval_top1 = predict_split(pipeline_model(loaded, recipe), test, recipe).argmax(axis=1)
    files = _extract(test.paths, tmp_path)
    rows = predict_files(run_dir, files, top_k=3)
    names = json.loads((run_dir / CLASS_NAMES_FILE).read_text())["class_names"]
    assert [row["top"][0]["index"] for row in rows] == eval_top1.tolist()
    assert [row["top"][0]["class"] for row in rows] == [names[i] for i in eval_top1]
    assert len(set(eval_top1.tolist())) > 1  # a non-degenerate model: the comparison means something
    assert all(len(row["top"]) == 3 and row["top"][0]["probability"] >= row["top"][1]["probability"] for row in rows)


def test_old_run_directories_keep_loading(cifar_run, tmp_path):
    run_dir, recipe, test, model = cifar_run
    old = tmp_path / "old-run"
    old.mkdir()
    (old / RECIPE_FILE).write_text((run_dir / RECIPE_FILE).read_text())
    model.save(old / MODEL_FILE)  # how runs were saved before: normalised inputs, no class_names.json
    (old / "events.jsonl").write_text(json.dumps({"event": "run_start", "class_names": test.class_names}) + "\n")
    migrated, current = load_run_model(old), load_run_model(run_dir)
    assert migrated.migrated and not current.migrated and has_preprocessing(migrated.model)
    assert migrated.class_names == current.class_names
    raw = test.images[:8].astype("float32")
    np.testing.assert_allclose(migrated.model.predict(raw, verbose=0), current.model.predict(raw, verbose=0), atol=1e-5)


def test_predict_command_json_and_errors(cifar_run, tmp_path):
    run_dir, _, test, _ = cifar_run
    files = _extract(test.paths[:2], tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "keras_gdfr.cli", "predict", str(run_dir)]
    done = subprocess.run([*command, str(tmp_path), "--top-k", "2", "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [pathlib.Path(r["path"]).name for r in rows] == [f.name for f in files]
    assert all(len(r["top"]) == 2 for r in rows)
    missing = subprocess.run([*command, str(tmp_path / "nope.jpg")], env=env, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope.jpg'}: no such image file or folder"


def test_readable_class_names():
    assert len(GTSRB_SIGNS) == 43 == len(set(GTSRB_SIGNS))
    assert readable_class_names("gtsrb", [f"{i:05d}" for i in (0, 14, 42)]) == [
        "Speed limit (20km/h)", "Stop", "End of no passing by vehicles over 3.5 metric tons"]
    assert readable_class_names("imagewoof", ["n02099601", "n02115641"]) == ["golden retriever", "dingo"]
    assert readable_class_names("cifar10", ["cat"]) == ["cat"]


def _class_folders(zip_path) -> set[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return {pathlib.PurePosixPath(name).parts[1] for name in archive.namelist() if name.count("/") >= 2}


def _tfds_labels(name: str) -> set[str]:
    tfds_files = importlib.resources.files("tensorflow_datasets") / "image_classification"
    return set((tfds_files / f"{name}_labels.txt").read_text().split())


def test_every_wordnet_id_is_a_real_class_folder(imagenette_zip):
    # Imagenette's folders (the real archive's train/ and val/) and tfds's label files:
    # Imagewang's 20 classes are Imagenette's 10 and Imagewoof's 10.
    pytest.importorskip("tensorflow_datasets")
    nette, woof = set(WORDNET_NAMES["imagenette"]), set(WORDNET_NAMES["imagewoof"])
    assert _class_folders(imagenette_zip) == nette == _tfds_labels("imagenette")
    assert _tfds_labels("imagewang") - nette == woof
    assert readable_class_names("imagenette", ["n03888257"]) == ["parachute"]
    # An id of the other dataset is not a class of this one.
    assert readable_class_names("imagenette", ["n02115641"]) == ["n02115641"]


@pytest.fixture(scope="module")
def tiny_raw_model():
    keras.utils.set_random_seed(1)
    from keras_gdfr import GDFRNet

    model = GDFRNet("tiny", input_shape=(32, 32, 3), num_classes=10, preprocessing="cifar10")
    randomise_batchnorm(model)
    return model


@pytest.mark.parametrize("fmt", ["keras", "torch", "onnx"])
def test_export_round_trips_within_1e5(fmt, tiny_raw_model, cifar_run, tmp_path, capfd, recwarn):
    if keras.backend.backend() != "torch" and fmt != "keras":
        pytest.skip("the torch and onnx exports are written on the torch backend")
    _, _, test, _ = cifar_run
    images = test.images[:6].astype("float32")  # real raw images
    result = ex.export_and_check(tiny_raw_model, fmt, tmp_path / f"model{ex.FORMATS[fmt][1]}", images)
    assert result["max_abs_diff"] < 1e-5, result
    assert result["same_top1"] and result["images"] == 6
    if fmt == "onnx":  # torch.onnx's library noise is kept off the user's terminal (issue 22, item 11)
        assert "torchvision is not installed" not in capfd.readouterr().err
        assert not [w for w in recwarn if "LeafSpec" in str(w.message)]


def test_saved_model_export_command_on_tensorflow(tiny_raw_model, cifar_run, tmp_path):
    # `gdfr export` re-runs itself under tensorflow and reloads with tf.saved_model.load.
    _, _, test, _ = cifar_run
    tiny_raw_model.save(tmp_path / "tiny.keras")
    folder = tmp_path / "images"
    folder.mkdir()
    _extract(test.paths[:4], folder)
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, "-m", "keras_gdfr.cli", "export", str(tmp_path / "tiny.keras"), "--format", "saved_model",
         "--images", str(folder), "--out", str(tmp_path / "sm")],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checked with tf.saved_model.load on 4 images" in done.stdout
    diff = float(done.stdout.split("max |difference| ")[1].split()[0])
    assert diff < 1e-5, done.stdout


def test_a_missing_runtime_says_what_to_install(monkeypatch, tiny_raw_model, tmp_path):
    real = ex.importlib.util.find_spec
    monkeypatch.setattr(ex.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ex.ExportError, match=r"^--format onnx needs onnxruntime: pip install onnxruntime$"):
        ex.export_and_check(tiny_raw_model, "onnx", tmp_path / "m.onnx", np.zeros((1, 32, 32, 3), "float32"))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("normalize", [True, False])
def test_the_saved_model_normalises_exactly_when_the_recipe_does(normalize, tmp_path):
    recipe = load_recipe("cifar10", variant="tiny", sets=[f"augment.normalize={str(normalize).lower()}"])
    model = build_model(recipe, 10)
    save_run_model(model, recipe, tmp_path, [str(i) for i in range(10)])
    saved = load_model(tmp_path / MODEL_FILE, compile=False)
    assert has_preprocessing(saved) == normalize
    fed = pipeline_model(saved, recipe)  # what `gdfr eval` feeds with the recipe's pipeline
    assert not has_preprocessing(fed) if normalize else fed is saved
    assert [w.path for w in fed.weights] == [w.path for w in model.weights]


def test_predict_on_256px_photos_matches_evals_predictions(imagenette_zip, tmp_path):
    # The large-image path: shorter side to 288, centre 256 crop, as the test split is read.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    recipe = load_recipe("imagenette", variant="tiny", data=str(imagenette_zip), limit_train=10, limit_test=10)
    (run_dir / RECIPE_FILE).write_text(json.dumps(recipe.to_dict()))
    _, test = load_splits(recipe)
    keras.utils.set_random_seed(2)
    model = build_model(recipe, test.num_classes)
    randomise_batchnorm(model, 2)
    save_run_model(model, recipe, run_dir, test.class_names)
    eval_probs = predict_split(pipeline_model(load_model(run_dir / MODEL_FILE, compile=False), recipe), test, recipe)
    rows = predict_files(run_dir, _extract(test.paths, tmp_path), top_k=10)
    assert [row["top"][0]["index"] for row in rows] == eval_probs.argmax(axis=1).tolist()
    for row, probs in zip(rows, eval_probs):
        by_index = {t["index"]: t["probability"] for t in row["top"]}
        np.testing.assert_allclose([by_index[i] for i in range(10)], probs, atol=1e-5)
    names = json.loads((run_dir / CLASS_NAMES_FILE).read_text())
    assert names["class_ids"][0] == "n01440764" and names["class_names"][0] == "tench"


def test_keras_own_torch_export_traces_frm(tiny_raw_model, tmp_path):
    # FRM used ops.split, whose sizes are data-dependent on torch: torch.export refused the model.
    if keras.backend.backend() != "torch":
        pytest.skip("format='torch' is the torch backend's export")
    import torch

    tiny_raw_model.export(str(tmp_path / "keras.pt2"), format="torch", verbose=False)
    images = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    with torch.no_grad():
        got = torch.export.load(str(tmp_path / "keras.pt2")).module()(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(got, tiny_raw_model.predict(images, verbose=0), atol=1e-5)


def test_the_readmes_python_snippets_run_as_shown(cifar_run, tmp_path, monkeypatch):
    """Every ```python block of README.md, in order, in one namespace, beside runs/cifar10-tiny and bird.jpg."""
    import re
    import shutil

    run_dir, _, test, _ = cifar_run
    shutil.copytree(run_dir, tmp_path / "runs" / "cifar10-tiny")
    bird = test.class_names.index("bird")
    _extract([test.paths[int(np.flatnonzero(test.labels == bird)[0])]], tmp_path)[0].rename(tmp_path / "bird.jpg")
    for name in ("cat", "ship"):  # the fine-tuning lines' my_photos/<class>/*.jpg
        index = test.class_names.index(name)
        (tmp_path / "my_photos" / name).mkdir(parents=True)
        _extract([test.paths[int(i)] for i in np.flatnonzero(test.labels == index)[:2]], tmp_path / "my_photos" / name)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(encoding="utf-8"), re.S | re.M)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    assert tuple(namespace["y"].shape) == (2, 16, 16, 64)
    assert namespace["count"].params == 43_139_772
    assert sorted(namespace["features"].output) == ["P0", "P1", "P2", "P3"]
