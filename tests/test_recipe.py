"""Recipes: the shipped files, layering (--set, flags, --epochs scaling), and every error kind."""

from __future__ import annotations

import json
import pathlib

import pytest

from keras_gdfr.data.specs import DATASETS
from keras_gdfr.training.recipe import (
    Recipe,
    RecipeError,
    find_recipe,
    list_recipes,
    load_recipe,
    parse_set,
)

REPO_RECIPES = pathlib.Path(__file__).resolve().parents[1] / "recipes"
SHIPPED = sorted(p.stem for p in REPO_RECIPES.glob("*.toml"))


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write a recipe as `recipes/<name>.toml` under a fresh working folder; returns its path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()

    def write_recipe(text: str, name: str = "exp") -> str:
        path = f"recipes/{name}.toml"
        pathlib.Path(path).write_text(text)
        return path

    return write_recipe


# --------------------------------------------------------------------------
# Shipped recipes


def test_one_recipe_per_dataset():
    assert SHIPPED == sorted(DATASETS)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_states_the_paper_defaults(name):
    """Each file spells out the paper's settings, and they equal the schema's defaults."""
    recipe = load_recipe(REPO_RECIPES / f"{name}.toml")
    assert recipe == Recipe.from_dict({"data": {"dataset": name}})
    spec = DATASETS[name]
    assert (recipe.train.batch_size, recipe.augment.flip, recipe.augment.resize, recipe.augment.pad) == (
        spec.batch_size, spec.flip, *((32, 4) if spec.image_size == 32 else (288, 0)),
    )
    assert recipe.train.epochs == 200 and recipe.train.milestones == (60, 120, 160)
    assert (recipe.train.lr, recipe.train.lr_gamma, recipe.train.momentum) == (0.1, 0.2, 0.9)
    assert (recipe.train.weight_decay, recipe.train.label_smoothing) == (5e-4, 0.1)
    assert recipe.model.variant == "gdfrnet" and recipe.model.overrides == {}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_is_explicit(name):
    """Every key but the optional class subset is written out in the file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    raw = tomllib.loads((REPO_RECIPES / f"{name}.toml").read_text())
    resolved = Recipe.from_dict({"data": {"dataset": name}}).to_dict()
    for section, keys in resolved.items():
        assert set(raw[section]) == set(keys) - {"classes"}, section


def test_the_papers_numbers_by_dataset():
    assert load_recipe("cifar10").train.batch_size == 128
    assert load_recipe("imagenette").train.batch_size == 64
    assert load_recipe("imagewoof").train.batch_size == 64
    assert load_recipe("svhn").augment.flip is False
    assert load_recipe("gtsrb").augment.flip is False
    assert load_recipe("cifar100").augment.flip is True


# --------------------------------------------------------------------------
# Round trip, layering


def test_to_dict_is_json_and_reloads():
    recipe = load_recipe(
        "cifar10",
        sets=["model.overrides.depths=[1, 1, 1, 1]", 'data.classes=["cat", "dog"]', "train.decay_exclude=['bias$']"],
    )
    data = json.loads(json.dumps(recipe.to_dict()))
    assert data["model"]["overrides"] == {"depths": [1, 1, 1, 1]}
    assert data["data"]["classes"] == ["cat", "dog"]
    assert Recipe.from_dict(data) == recipe
    assert Recipe.from_dict(data).model.overrides["depths"] == (1, 1, 1, 1)


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("train.epochs=3", "train.epochs", 3),
        (" train.lr = 0.05 ", "train.lr", 0.05),
        ("train.jit_compile=true", "train.jit_compile", True),
        ("train.milestones=[2, 4]", "train.milestones", [2, 4]),
        ("model.overrides.reduction=8", "model.overrides.reduction", 8),
        ('data.classes=["cat","dog"]', "data.classes", ["cat", "dog"]),
        ("data.source=tfds", "data.source", "tfds"),  # not TOML: a bare string
        ('run.name="my run"', "run.name", "my run"),
        ("run.name=2024", "run.name", "2024"),  # a string key keeps the text
        ("model.overrides.stem=3x3", "model.overrides.stem", "3x3"),
        ("model.overrides={reduction = 8}", "model.overrides", {"reduction": 8}),
        ("data.data_dir=/data/a=b", "data.data_dir", "/data/a=b"),
    ],
)
def test_parse_set(text, key, value):
    assert parse_set(text) == (key, value)


def test_flags_and_sets_layer_over_the_file():
    recipe = load_recipe(
        "cifar10",
        variant="tiny",
        sets=["train.batch_size=8", "model.overrides.reduction=4", "run.name=smoke"],
        data="/data/cifar",
        limit_train=64,
        limit_test=32,
        run_dir="/tmp/runs",
    )
    assert recipe.model.variant == "tiny" and recipe.model.overrides == {"reduction": 4}
    assert recipe.model_config()["reduction"] == 4 and recipe.model_config()["depths"] == (1, 1, 1, 1)
    assert (recipe.data.data_dir, recipe.data.limit_train, recipe.data.limit_test) == ("/data/cifar", 64, 32)
    assert (recipe.run.dir, recipe.run.name, recipe.train.batch_size) == ("/tmp/runs", "smoke", 8)


def test_flags_win_over_sets():
    assert load_recipe("cifar10", sets=["train.epochs=5"], epochs=10).train.epochs == 10


@pytest.mark.parametrize(
    "kwargs, milestones",
    [
        (dict(), (60, 120, 160)),
        (dict(epochs=200), (60, 120, 160)),
        (dict(epochs=100), (30, 60, 80)),
        (dict(epochs=3), (1, 2)),
        (dict(epochs=1), ()),
        (dict(sets=["train.epochs=3"]), (1, 2)),
        (dict(epochs=3, sets=["train.milestones=[2]"]), (2,)),  # explicit: kept
        (dict(epochs=3, sets=["train.milestones=[]"]), ()),
    ],
)
def test_epochs_scale_the_milestones(kwargs, milestones):
    assert load_recipe("cifar10", **kwargs).train.milestones == milestones


def test_milestones_scale_from_the_files_own_length(write):
    path = write('[data]\ndataset = "cifar10"\n[train]\nepochs = 100\nmilestones = [50, 75]\n')
    assert load_recipe(path).train.milestones == (50, 75)
    assert load_recipe(path, epochs=10).train.milestones == (5, 8)  # 7.5 rounds half up


def test_default_milestones_follow_the_files_length(write):
    path = write('[data]\ndataset = "cifar10"\n[train]\nepochs = 100\n')
    assert load_recipe(path).train.milestones == (30, 60, 80)


# --------------------------------------------------------------------------
# Errors: one line, naming the file, the dotted key and the value

GOOD = '[data]\ndataset = "cifar10"\n'
P = "recipes/exp.toml"


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        # unknown section / key, with did-you-mean
        (GOOD + "[trian]\nepochs = 3\n", {}, f"{P}: trian: unknown section; did you mean 'train'?"),
        ("epochs = 3\n" + GOOD, {}, f"{P}: epochs: unknown section; did you mean 'train.epochs'?"),
        (GOOD + "[train]\nepoch = 3\n", {}, f"{P}: train.epoch: unknown key; did you mean 'train.epochs'?"),
        (GOOD + "[run]\nfoo = 1\n", {}, f"{P}: run.foo: unknown key (keys: dir, name)"),
        (GOOD, dict(sets=["train.epoch=3"]),
         f"{P}: train.epoch: unknown key; did you mean 'train.epochs'? (from --set train.epoch=3)"),
        (GOOD + "[model.overrides]\nreducton = 8\n", {},
         f"{P}: model.overrides.reducton: unknown model knob; did you mean 'model.overrides.reduction'?"),
        # wrong type
        (GOOD + '[train]\nepochs = "200"\n', {}, f"{P}: train.epochs: expected an integer >= 1, got '200' (string)"),
        (GOOD + "[augment]\nflip = 1\n", {}, f"{P}: augment.flip: expected true or false, got 1 (integer)"),
        ("train = 3\n" + GOOD, {}, f"{P}: train: expected a table [train], got 3 (integer)"),
        (GOOD + "[train]\nbatch_size = true\n", {}, f"{P}: train.batch_size: expected an integer >= 1, got True (boolean)"),
        (GOOD + '[train]\nmilestones = [60, "x"]\n', {},
         f"{P}: train.milestones: item 1: expected an integer >= 1, got 'x' (string)"),
        # out of range
        (GOOD, dict(epochs=0), f"{P}: train.epochs: expected an integer >= 1, got 0 (integer) (from --epochs 0)"),
        (GOOD + "[train]\nmomentum = 1.0\n", {}, f"{P}: train.momentum: expected a number in [0, 1), got 1.0 (float)"),
        (GOOD + "[train]\nlr = 0\n", {}, f"{P}: train.lr: expected a number > 0, got 0 (integer)"),
        (GOOD + "[train]\nlabel_smoothing = -0.1\n", {},
         f"{P}: train.label_smoothing: expected a number in [0, 1), got -0.1 (float)"),
        (GOOD + "[train]\nmilestones = [60, 250]\n", {},
         f"{P}: train.milestones: milestone 250 is past the last epoch, 200 (train.epochs); got [60, 250]"),
        (GOOD + "[train]\nmilestones = [120, 60]\n", {},
         f"{P}: train.milestones: expected strictly ascending epochs, got [120, 60]"),
        (GOOD, dict(limit_train=-1),
         f"{P}: data.limit_train: expected an integer >= 0, got -1 (integer) (from --limit-train -1)"),
        (GOOD, dict(sets=["model.overrides.upsample_kernel=5"]),
         f"{P}: model.overrides.upsample_kernel: expected one of 2, 4, 6, 8, 10, got 5 (integer)"
         " (from --set model.overrides.upsample_kernel=5)"),
        (GOOD, dict(sets=["model.overrides.frm_position=E"]),
         f"{P}: model.overrides.frm_position: expected one of 'A', 'B', 'C', 'D', got 'E' (string)"
         " (from --set model.overrides.frm_position=E)"),
        (GOOD, dict(sets=["model.overrides.reduction=0"]),
         f"{P}: model.overrides.reduction: expected an integer >= 1, got 0 (integer)"
         " (from --set model.overrides.reduction=0)"),
        (GOOD, dict(sets=["model.overrides.widths=[64, 128, 0, 512]"]),
         f"{P}: model.overrides.widths: item 2: expected an integer >= 1, got 0 (integer)"
         " (from --set model.overrides.widths=[64, 128, 0, 512])"),
        (GOOD, dict(sets=["model.overrides.depths=[3, 4, 6]"]),
         f"{P}: model.overrides.depths: expected an array of 4 items, got [3, 4, 6]"
         " (from --set model.overrides.depths=[3, 4, 6])"),
        (GOOD, dict(sets=["train.precision=fp16"]),
         f"{P}: train.precision: expected one of 'float32', 'mixed_bfloat16', 'mixed_float16', got 'fp16' (string)"
         " (from --set train.precision=fp16)"),
        (GOOD + 'on_corrupt = "skp"\n', {},
         f"{P}: data.on_corrupt: expected one of 'skip', 'fail', got 'skp' (string); did you mean 'skip'?"),
        # unknown dataset / variant, missing dataset
        ('[data]\ndataset = "cifar"\n', {},
         f"{P}: data.dataset: unknown dataset 'cifar'; did you mean 'cifar10'? "
         "(known: 'cifar10', 'cifar100', 'svhn', 'gtsrb', 'imagenette', 'imagewoof')"),
        (GOOD, dict(variant="gdfrnt"), f"{P}: model.variant: unknown variant 'gdfrnt'; did you mean 'gdfrnet'? (from --variant gdfrnt)"),
        ("[train]\nepochs = 3\n", {},
         f"{P}: data.dataset: required key is missing (one of: cifar10, cifar100, svhn, gtsrb, imagenette, imagewoof)"),
        # malformed --set
        (GOOD, dict(sets=["train.epochs"]),
         f"{P}: --set 'train.epochs': expected KEY=VALUE with a dotted key, e.g. train.epochs=3 or model.overrides.reduction=8"),
        (GOOD, dict(sets=["train.epochs="]), f"{P}: --set 'train.epochs=': missing value after '='"),
        (GOOD, dict(sets=["epochs=3"]), f"{P}: --set 'epochs=3': 'epochs' is not a dotted key; did you mean 'train.epochs'?"),
        (GOOD + '[model]\nvariant = "tiny"\n', dict(sets=["model.variant.x=1"]),
         f"{P}: model.variant.x: model.variant is not a table, cannot set a key inside it (from --set model.variant.x=1)"),
        (GOOD, dict(sets=["model.variant.x=1"]),
         f"{P}: model.variant: expected a variant name, got {{'x': 1}} (table) (from --set model.variant.x=1)"),
        # TOML syntax
        (GOOD + "[train]\nepochs = \n", {}, f"{P}: TOML syntax error: Invalid value (at line 4, column 10)"),
    ],
)
def test_error_messages(write, text, kwargs, message):
    path = write(text)
    with pytest.raises(RecipeError) as error:
        load_recipe(path, **kwargs)
    assert str(error.value) == message
    assert "\n" not in str(error.value)


def test_missing_file_suggests_a_neighbour(write):
    write(GOOD, name="cifar10")
    with pytest.raises(RecipeError) as error:
        load_recipe("recipes/cifar1.toml")
    assert str(error.value) == "recipes/cifar1.toml: cannot read recipe: no such file; did you mean 'recipes/cifar10.toml'?"


def test_unreadable_file(write):
    path = pathlib.Path(write(""))
    path.write_bytes(b'[data]\ndataset = "\xff"\n')
    with pytest.raises(RecipeError) as error:
        load_recipe(str(path))
    assert str(error.value).startswith(f"{P}: cannot read recipe: not UTF-8 text")


def test_from_dict_names_its_origin():
    with pytest.raises(RecipeError) as error:
        Recipe.from_dict({"data": {"dataset": "cifar10"}, "train": {"epochs": 0}}, origin="runs/x/recipe.json")
    assert str(error.value) == "runs/x/recipe.json: train.epochs: expected an integer >= 1, got 0 (integer)"


# --------------------------------------------------------------------------
# Finding and listing


def test_find_recipe_by_name_and_path(write):
    local = write(GOOD, name="mine")
    assert find_recipe("mine") == pathlib.Path("recipes/mine.toml").absolute()
    assert find_recipe(local) == pathlib.Path(local)
    assert find_recipe("cifar10") == REPO_RECIPES / "cifar10.toml"  # beside the package
    with pytest.raises(RecipeError, match=r"^cifar1: no such recipe file or recipe name; did you mean 'cifar10'\?"):
        find_recipe("cifar1")


def test_list_recipes(write):
    write(GOOD, name="good")
    write("[data]\ndataset = 3\n", name="bad")
    rows = list_recipes("recipes")
    assert [row[0] for row in rows] == ["bad", "good"]
    name, path, dataset, summary = rows[1]
    assert (path, dataset) == (pathlib.Path("recipes/good.toml"), "cifar10")
    assert summary == "cifar10, gdfrnet: 200 epochs, batch 128, lr 0.1 x0.2 at 60/120/160"
    assert rows[0][2] == "" and rows[0][3] == "invalid: recipes/bad.toml: data.dataset: expected a dataset name, got 3 (integer)"


def test_list_recipes_default_folders_include_the_shipped_ones():
    names = [row[0] for row in list_recipes()]
    assert set(SHIPPED) <= set(names)


def test_the_commands_a_recipe_names_exist():
    """Each recipe's comments said "`gdfr variants` lists the ablations": there is no such command."""
    import re

    from keras_gdfr.cli import main

    named = {
        (file.name, command)
        for file in pathlib.Path("recipes").glob("*.toml")
        for command in re.findall(r"`gdfr ([a-z-]+)", file.read_text())
    }
    assert named and {command for _, command in named} <= set(main.commands), sorted(named)


def test_summary_says_one_epoch_and_a_constant_rate():
    """It said `1 epochs` and `lr 0.1 x0.2 at none`."""
    recipe = load_recipe("recipes/cifar10.toml", variant="tiny", epochs=1)
    assert recipe.summary() == "cifar10, tiny: 1 epoch, batch 128, lr 0.1 constant"
    assert load_recipe("recipes/cifar10.toml", epochs=3).summary().endswith(": 3 epochs, batch 128, lr 0.1 x0.2 at 1/2")
