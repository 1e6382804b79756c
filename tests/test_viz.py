"""`gdfr viz`: the four Fig. 17 maps of a tiny GDFRNet."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from keras_gdfr.report import viz

FIG17_MAPS = ["plain", "frrb", "fgcm", "fom"]


@pytest.fixture(scope="module")
def tiny_model():
    from keras_gdfr.models import GDFRNet

    return GDFRNet(variant="tiny", input_shape=(32, 32, 3), num_classes=10)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    """A 40x48 picture: a bright disc on a dark gradient (resized to 32x32 by viz)."""
    yy, xx = np.mgrid[0:40, 0:48]
    disc = ((yy - 20) ** 2 + (xx - 24) ** 2 < 100)[..., None] * np.array([220, 180, 60])
    background = np.stack([xx * 2, yy * 2, np.full_like(xx, 40)], axis=-1)
    path = tmp_path_factory.mktemp("img") / "disc.png"
    Image.fromarray(np.clip(disc + background, 0, 255).astype(np.uint8)).save(path)
    return path


def _size(path):
    with Image.open(path) as image:
        image.load()
        return image.size


def test_feature_maps_of_a_tiny_gdfrnet(tiny_model):
    batch = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    maps = viz.feature_maps(tiny_model, batch)
    assert list(maps) == FIG17_MAPS
    # Stage 1 of `tiny` is 16 wide at full resolution; the branch's level 1 keeps stage 1's shape.
    for key in FIG17_MAPS:
        assert maps[key].shape == (32, 32, 16), key
        assert np.isfinite(maps[key]).all()
    # The plain map is the same block without its FRM: it differs from the FRRB output.
    assert not np.allclose(maps["plain"], maps["frrb"])
    assert (maps["plain"] >= 0).all()  # ReLU(F(x) + s(x))


def test_plain_variant_has_only_the_plain_map():
    from keras_gdfr.models import GDFRNet

    model = GDFRNet("net2", input_shape=(32, 32, 3), num_classes=10, depths=(1, 1, 1, 1), widths=(8, 16, 32, 64))
    maps = viz.feature_maps(model, np.zeros((1, 32, 32, 3), "float32"))
    assert list(maps) == ["plain"] and maps["plain"].shape == (32, 32, 8)


def test_heatmap_is_normalised_and_resized():
    feature = np.zeros((4, 4, 3), np.float32)
    feature[1, 2] = [-3.0, 3.0, 0.0]  # one hot spot, either sign counts
    expected = np.zeros((4, 4))
    expected[1, 2] = 1.0
    for reduce in ("mean", "l2"):
        np.testing.assert_allclose(viz.heatmap(feature, (4, 4), reduce=reduce), expected, atol=1e-6)
    heat = viz.heatmap(feature, (16, 20))  # bilinear up-sampling keeps the spot in place
    assert heat.shape == (16, 20) and heat.min() == 0.0 and heat.max() <= 1.0
    assert np.unravel_index(heat.argmax(), heat.shape)[0] in range(4, 8)
    assert viz.heatmap(np.ones((4, 4, 2)), (8, 8)).max() == 0.0  # a flat map shows nothing
    with pytest.raises(ValueError, match="reduce"):
        viz.heatmap(feature, (8, 8), reduce="max")


def test_preprocess_normalises_with_the_dataset_statistics(image_path):
    from keras_gdfr.data.specs import DATASETS

    rgb, batch = viz.preprocess(image_path, (32, 32), "cifar10")
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8 and batch.shape == (1, 32, 32, 3)
    spec = DATASETS["cifar10"]
    np.testing.assert_allclose(batch[0, 0, 0], (rgb[0, 0] / 255.0 - spec.mean) / spec.std, rtol=1e-5)
    _, channels_first = viz.preprocess(image_path, (32, 32), None, data_format="channels_first")
    np.testing.assert_allclose(channels_first[0, :, 0, 0], rgb[0, 0] / 255.0, rtol=1e-6)


def test_viz_command_writes_the_four_maps_and_the_panel(tiny_model, image_path, tmp_path):
    from keras_gdfr.cli import main

    model_path = tmp_path / "tiny.keras"
    tiny_model.save(model_path)
    out = tmp_path / "viz"
    result = CliRunner().invoke(main, ["viz", str(model_path), "--image", str(image_path), "--out", str(out),
                                       "--dataset", "cifar10"])
    assert result.exit_code == 0, result.output
    for key in FIG17_MAPS:
        assert _size(out / f"disc-{key}.png") == (224, 224), key  # 32 px shown 7x
    assert _size(out / "disc-fig17.png") == (5 * viz.PANEL_COLUMN_WIDTH, viz.PANEL_HEIGHT)


def test_viz_of_a_run_directory_rebuilds_from_its_checkpoint(tiny_model, image_path, tmp_path):
    from keras_gdfr.training.recipe import load_recipe

    recipe_file = tmp_path / "tiny.toml"
    recipe_file.write_text('[data]\ndataset = "cifar10"\n[model]\nvariant = "tiny"\n')
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "recipe.json").write_text(json.dumps(load_recipe(recipe_file).to_dict()))
    (run_dir / "events.jsonl").write_text(json.dumps({"event": "run_start", "time": 0.0, "variant": "tiny",
                                                      "dataset": "cifar10"}) + "\n")
    tiny_model.save_weights(run_dir / "checkpoints" / "best.weights.h5")
    loaded = viz.load_model(run_dir)
    assert loaded.dataset == "cifar10" and loaded.normalize
    for mine, theirs in zip(loaded.model.weights, tiny_model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))
    written = viz.visualize(loaded, image_path, tmp_path / "out")
    assert sorted(written) == sorted(FIG17_MAPS + ["panel"])


def test_viz_writes_beside_its_source_by_default(tiny_model, image_path, tmp_path, monkeypatch):
    """Not into ./viz of wherever it runs (a clone, where `gdfr bench` then saw uncommitted changes)."""
    from keras_gdfr.cli import main

    elsewhere = tmp_path / "clone"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    from keras_gdfr.training.recipe import load_recipe

    recipe_file = tmp_path / "tiny.toml"
    recipe_file.write_text('[data]\ndataset = "cifar10"\n[model]\nvariant = "tiny"\n')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipe.json").write_text(json.dumps(load_recipe(recipe_file).to_dict()))
    (run_dir / "events.jsonl").write_text(json.dumps({"event": "run_start", "time": 0.0}) + "\n")
    tiny_model.save(run_dir / "model.keras")
    for source, out in ((run_dir, run_dir / "viz"), (run_dir / "model.keras", run_dir / "viz")):
        result = CliRunner().invoke(main, ["viz", str(source), "--image", str(image_path), "--dataset", "cifar10"])
        assert result.exit_code == 0, result.output
        assert f"panel  {out / 'disc-fig17.png'}" in result.output
        assert (out / "disc-fig17.png").is_file()
    assert list(elsewhere.iterdir()) == []


def test_viz_refuses_what_it_cannot_read(tmp_path, image_path):
    from keras_gdfr.cli import main

    result = CliRunner().invoke(main, ["viz", str(tmp_path), "--image", str(image_path)])
    assert result.exit_code != 0 and "neither a run directory" in result.output


@pytest.mark.skipif(keras.backend.backend() == "tensorflow", reason="TensorFlow's CPU convolutions are channels_last only")
def test_feature_maps_of_a_channels_first_model(image_path, tmp_path):
    from keras_gdfr.models import GDFRNet

    model = GDFRNet("tiny", input_shape=(3, 32, 32), num_classes=10, data_format="channels_first")
    assert viz.input_size(model) == (32, 32)
    maps = viz.feature_maps(model, np.zeros((1, 3, 32, 32), "float32"))
    assert list(maps) == FIG17_MAPS and all(m.shape == (32, 32, 16) for m in maps.values())
    written = viz.visualize(viz.LoadedModel(model, "cifar10"), image_path, tmp_path)
    assert _size(written["fom"]) == (224, 224)
