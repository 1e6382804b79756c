"""`gdfr report` over repeats that differ only by seed: mean +- std, the paper's orderings, all seeds' curves."""

from __future__ import annotations

import json
import pathlib

import pytest
from PIL import Image

from keras_gdfr.report import report, seeds
from keras_gdfr.report.runs import find_runs, load_run
from tests.test_report import write_run


def seeded_run(root: pathlib.Path, variant: str, seed: int, accuracy: float, epochs: int = 3) -> pathlib.Path:
    """A run of `variant` on CIFAR-10 with train.seed = seed, its test accuracy `accuracy`."""
    path = write_run(root, f"cifar10-{variant}-e{epochs}-s{seed}", variant=variant, dataset="cifar10", epochs=epochs,
                     val_accuracies=[accuracy - 0.1, accuracy], test_accuracy=accuracy, params=1, macs=1)
    recipe = json.loads((path / "recipe.json").read_text())
    recipe["train"]["seed"] = seed
    recipe["run"]["name"] = path.name  # names differ between repeats too
    (path / "recipe.json").write_text(json.dumps(recipe))
    return path


@pytest.fixture
def ladder(tmp_path):
    """tiny-net2/3/5 with several seeds, tiny-net4 with one, and a tiny-net5 run with other epochs."""
    root = tmp_path / "runs"
    for seed, acc in enumerate((0.45, 0.47, 0.46)):    # mean 46.00, std 1.00
        seeded_run(root, "tiny-net5", seed, acc)
    for seed, acc in enumerate((0.40, 0.41, 0.42)):    # mean 41.00, std 1.00
        seeded_run(root, "tiny-net2", seed, acc)
    for seed, acc in enumerate((0.42, 0.46)):          # mean 44.00, std sqrt(8) = 2.83
        seeded_run(root, "tiny-net3", seed, acc)
    seeded_run(root, "tiny-net4", 0, 0.30)              # one seed: no spread
    seeded_run(root, "tiny-net5", 0, 0.50, epochs=5)    # another experiment (5 epochs)
    return root


def test_runs_differing_only_by_seed_form_one_group(ladder):
    runs, _ = find_runs([ladder])
    groups = {(g.variant, g.epochs): g for g in seeds.group_runs(runs)}
    assert sorted(groups) == [("tiny-net2", 3), ("tiny-net3", 3), ("tiny-net4", 3), ("tiny-net5", 3), ("tiny-net5", 5)]
    net5 = groups["tiny-net5", 3]
    assert [seeds.seed_of(r) for r in net5.runs] == [0, 1, 2]
    assert net5.mean == pytest.approx(46.0) and net5.std == pytest.approx(1.0)
    assert net5.cell() == "46.00 ± 1.00 (n=3)" and net5.seeds_cell() == "s0 45.00, s1 47.00, s2 46.00"
    assert groups["tiny-net3", 3].std == pytest.approx(8 ** 0.5)
    assert groups["tiny-net4", 3].cell() == "30.00 (n=1)"


def test_orderings_beyond_the_spread(ladder):
    runs, _ = find_runs([ladder])
    groups = {(g.variant, g.epochs): g for g in seeds.group_runs(runs)}
    net2, net3, net4, net5 = (groups[f"tiny-net{k}", 3] for k in (2, 3, 4, 5))
    assert seeds.ordering(net2, net5) == seeds.HOLDS          # 46 - 1 = 45 > 41 + 1 = 42
    assert seeds.ordering(net2, net3) == seeds.WITHIN         # 44 - 2.83 = 41.17 < 41 + 1 = 42
    assert seeds.ordering(net3, net5) == seeds.WITHIN         # 46 - 1 = 45 < 44 + 2.83 = 46.83
    # One seed has no spread to judge: only the direction (41 > 30 here, although 30 + 0 < 41 - 1).
    assert seeds.ordering(net2, net4) == seeds.LOWER_ONE_SEED
    assert seeds.ordering(net4, net2) == seeds.HIGHER_ONE_SEED


def test_report_shows_mean_and_spread_beside_the_paper(ladder, tmp_path):
    out = tmp_path / "report"
    path, skipped = report.write_report([ladder], out, count=False)
    text = path.read_text()
    assert skipped == []
    assert "## Over seeds" in text
    # The ladder at tiny's widths beside Table 9 (tiny-netK stands for netK); the 5-epoch run is not picked
    # over the 3-seed group.
    assert ("| tiny-net5 | CIFAR-10 | 46.00 ± 1.00 (n=3) | s0 45.00, s1 47.00, s2 46.00 | 3 | 96.88 | -50.88 |"
            in text)
    assert "| tiny-net4 | CIFAR-10 | 30.00 (n=1) | s0 30.00 | 3 | 96.56 | -66.56 |" in text
    assert ("- CIFAR-10: tiny-net5 > tiny-net2 in the paper (96.88 > 96.46); measured 46.00 ± 1.00 (n=3) vs "
            "41.00 ± 1.00 (n=3): **holds beyond the spread**") in text
    assert ("- CIFAR-10: tiny-net4 > tiny-net2 in the paper (96.56 > 96.46); measured 30.00 (n=1) vs "
            "41.00 ± 1.00 (n=3): **reversed on one seed (spread unknown)**") in text
    assert ("- CIFAR-10: tiny-net5 > tiny-net3 in the paper (96.88 > 96.58); measured 46.00 ± 1.00 (n=3) vs "
            "44.00 ± 2.83 (n=2): **within the spread**") in text
    # All seeds of a group on one plot.
    figure = out / "figures" / "cifar10-tiny-net5-e3-s0-seeds.png"
    assert f"](figures/{figure.name})" in text
    assert Image.open(figure).size == (1000, 400)


def test_no_seed_section_without_repeats(tmp_path):
    root = tmp_path / "runs"
    seeded_run(root, "tiny-net5", 0, 0.45)
    seeded_run(root, "tiny-net2", 0, 0.40)
    path, _ = report.write_report([root], tmp_path / "report", count=False)
    assert "Over seeds" not in path.read_text()


def test_group_key_ignores_only_the_seed_and_the_run_names(ladder):
    a, b = load_run(ladder / "cifar10-tiny-net5-e3-s0"), load_run(ladder / "cifar10-tiny-net5-e3-s1")
    assert seeds.group_key(a) == seeds.group_key(b)
    b.recipe["data"]["limit_train"] = 128
    assert seeds.group_key(a) != seeds.group_key(b)


def test_a_native_control_is_neither_pooled_with_the_seeds_nor_taken_for_the_tables_cell(tmp_path):
    """bench/native_train.py's runs (run_start "trainer") check the trainer: they stand beside, not for, gdfr train's."""
    from keras_gdfr.report import tables

    root = tmp_path / "runs"
    seeded_run(root, "tiny-net5", 0, 0.40)
    control = seeded_run(root, "tiny", 0, 0.60)  # tiny is tiny-net5's configuration
    control = control.rename(root / "cifar10-a-native-control-s0")  # listed first: the order must not decide
    lines = (control / "events.jsonl").read_text().splitlines()
    start = json.loads(lines[0])
    start["trainer"] = "native-torch"
    (control / "events.jsonl").write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    runs, _ = find_runs([root])
    groups = seeds.group_runs(runs)
    assert {g.first.trainer: g.mean for g in groups} == {None: pytest.approx(40.0), "native-torch": pytest.approx(60.0)}
    cells = seeds.grid_groups(tables.paper_grid("9-tiny"), groups)
    assert cells[("tiny-net5", "cifar10")].mean == pytest.approx(40.0)
