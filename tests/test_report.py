"""`gdfr report`: tables from fixture run directories hold exactly their numbers and the paper's."""

from __future__ import annotations

import json
import pathlib
import re
import types

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from keras_gdfr import evaluation
from keras_gdfr.report import figures, report, tables
from keras_gdfr.report.runs import describe_data, find_runs, load_run, read_events

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _recipe(dataset, variant, epochs, data_dir="", overrides=None):
    """A resolved recipe in the shape of keras_gdfr.training.recipe.Recipe.to_dict()."""
    return {
        "data": {"dataset": dataset, "source": "imagefolder" if data_dir else "auto", "data_dir": data_dir,
                 "limit_train": 2000, "limit_test": 500},
        "augment": {"flip": True, "pad": 4, "resize": 32, "normalize": True},
        "model": {"variant": variant, "overrides": overrides or {}},
        "train": {"epochs": epochs, "batch_size": 128},
        "run": {"dir": "runs", "name": ""},
    }


def write_run(root: pathlib.Path, run_id: str, *, variant: str, dataset: str, epochs: int, val_accuracies,
              test_accuracy, params, macs, data_dir="", status="completed", torn_tail=False, overrides=None):
    """A run directory as docs/run-directory.md describes, with known numbers."""
    path = root / run_id
    path.mkdir(parents=True)
    recipe = _recipe(dataset, variant, epochs, data_dir, overrides)
    (path / "recipe.json").write_text(json.dumps(recipe))
    t = 1764314100.0
    events = [dict(event="run_start", time=t, run_id=run_id, recipe=recipe, variant=variant, dataset=dataset,
                   backend="torch", params=params, macs=macs, epochs=epochs, initial_epoch=0, steps_per_epoch=16,
                   batch_size=128, train_size=2000, test_size=500, pid=4242)]
    for epoch, val in enumerate(val_accuracies, start=1):
        events.append(dict(event="progress", time=t + epoch, epoch=epoch, step=4, steps=16, loss=2.2, accuracy=0.2))
        events.append(dict(event="epoch_end", time=t + epoch + 0.5, epoch=epoch, epochs=epochs, loss=2.0 / epoch,
                           accuracy=val - 0.05, val_loss=2.1 / epoch, val_accuracy=val, lr=0.1, seconds=30.0))
    test = None if test_accuracy is None else {"accuracy": test_accuracy, "loss": 1.7}
    events.append(dict(event="run_end", time=t + 100, status=status, epoch=len(val_accuracies), seconds=100.0,
                       best_val_accuracy=max(val_accuracies), test=test))
    text = "\n".join(json.dumps(e) for e in events) + "\n"
    if torn_tail:
        text += '{"event": "progress", "time": 17643'  # a writer killed mid-line
    (path / "events.jsonl").write_text(text)
    return path


def cifar10_eval(correct: int, total: int = 1000) -> dict:
    """eval.json of a 10-class classifier that gets exactly `correct` of `total` right."""
    y = np.arange(total) % 10
    predicted = np.where(np.arange(total) < correct, y, (y + 1) % 10)
    probs = np.full((total, 10), 0.4 / 9)
    probs[np.arange(total), predicted] = 0.6
    return evaluation.evaluation_report(y, probs, CIFAR10_CLASSES, loss=1.65, source="test split of cifar10",
                                        checkpoint="model.keras")


@pytest.fixture
def runs_root(tmp_path):
    """Two runs, one directory that is not a run, one whose events are unreadable."""
    root = tmp_path / "runs"
    gdfr = write_run(root, "cifar10-gdfrnet", variant="gdfrnet", dataset="cifar10", epochs=3,
                     val_accuracies=[0.30, 0.38, 0.4111], test_accuracy=0.40, params=43_210_000,
                     macs=1_500_000_000, data_dir="/work/shared/data/cifar10-jpeg.zip", torn_tail=True)
    evaluation.save_evaluation_report(cifar10_eval(correct=4123, total=10_000), gdfr / "eval.json")
    write_run(root, "cifar100-net1", variant="net1", dataset="cifar100", epochs=5,
              val_accuracies=[0.15, 0.2857], test_accuracy=0.2857, params=21_330_000,
              macs=290_000_000, status="interrupted")
    (root / "notes").mkdir()
    broken = root / "broken"
    broken.mkdir()
    (broken / "recipe.json").write_text("{}")
    return root


def test_events_reader_skips_a_torn_last_line(runs_root):
    events = read_events(runs_root / "cifar10-gdfrnet" / "events.jsonl")
    assert [e["event"] for e in events][-1] == "run_end"


def test_find_runs_reads_runs_and_reports_what_it_skips(runs_root):
    runs, skipped = find_runs([runs_root])
    assert sorted(r.run_id for r in runs) == ["cifar10-gdfrnet", "cifar100-net1"]
    assert len(skipped) == 1 and "broken" in skipped[0]
    runs, skipped = find_runs([runs_root / "notes"])
    assert runs == [] and "no run directory" in skipped[0]


def test_run_fields_come_from_events_and_eval(runs_root):
    run = load_run(runs_root / "cifar10-gdfrnet")
    assert (run.variant, run.dataset, run.status, run.epochs_trained, run.epochs_planned) == (
        "gdfrnet", "cifar10", "completed", 3, 3)
    assert run.test_accuracy == pytest.approx(0.4123)  # eval.json wins over run_end's test
    assert run.best_val_accuracy == pytest.approx(0.4111)
    assert describe_data(run) == (
        "JPEG CIFAR-10 (shared/data), ~1-2 points below lossless; 2,000 of 50,000 train / 500 of 10,000 test images"
    )
    other = load_run(runs_root / "cifar100-net1")
    assert other.evaluation is None and other.test_accuracy == pytest.approx(0.2857)
    assert describe_data(other).startswith("tfds `cifar100`")


def test_equivalent_variants_follow_the_variant_table():
    assert {"gdfrnet", "net5", "frm-c", "fgcm-a", "branch-c"} <= tables.equivalent_variants("gdfrnet")
    assert {"net3", "branch-a"} <= tables.equivalent_variants("net3")
    assert "net4" not in tables.equivalent_variants("net3")


@pytest.mark.parametrize(
    "variant, dataset, value, source",
    [
        ("gdfrnet", "cifar10", 96.88, "Table 9 net5"),
        ("gdfrnet", "gtsrb", 94.89, "Table 5 A"),  # the only GTSRB number for GDFRNet
        ("branch-a", "svhn", 97.54, "Table 9 net3"),
        ("net1", "cifar10", 89.60, "Table 9 net1"),
        ("net2", "imagenette", None, None),  # an empty cell of Table 9
        ("frm-d", "imagewoof", 82.34, "Table 4 D"),
        ("fgcm-b", "imagewoof", 83.95, "Table 5 B"),
        ("branch-d", "cifar100", 79.04, "Table 6 D"),
        ("tiny", "cifar10", None, None),
    ],
)
def test_paper_accuracy_lookup(variant, dataset, value, source):
    assert tables.paper_accuracy(variant, dataset) == (value, source)


def test_paper_results_are_consistent_where_the_paper_repeats_itself():
    t = tables.paper_results()["tables"]
    net5 = t["table9"]["rows"]["net5"]["values"]
    for key, row in (("table4", "frm-c"), ("table5", "fgcm-a"), ("table6", "branch-c"), ("table7", "gdfrnet")):
        for dataset, value in t[key]["rows"][row]["values"].items():
            if dataset in net5:
                assert value == net5[dataset], (key, row, dataset)
    assert t["table6"]["rows"]["branch-a"]["values"] == {
        d: v for d, v in t["table9"]["rows"]["net3"]["values"].items() if d in t["table6"]["datasets"]}
    assert t["table7"]["rows"]["net1"]["values"] == t["table9"]["rows"]["net1"]["values"]
    assert (t["table8"]["rows"]["gdfrnet"]["params_m"], t["table8"]["rows"]["gdfrnet"]["macs_g"]) == (56.45, 2.56)
    assert (t["table8"]["rows"]["net2"]["params_m"], t["table8"]["rows"]["net2"]["macs_g"]) == (21.28, 1.16)
    from keras_gdfr.variants import VARIANTS

    for key in ("table4", "table5", "table6", "table9"):
        assert set(t[key]["rows"]) <= set(VARIANTS)


def _table_row(markdown: str, first_cells: list[str]) -> list[str]:
    """The cells of the Markdown table row starting with `first_cells`."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[: len(first_cells)] == first_cells:
            return cells
    raise AssertionError(f"no row starting with {first_cells}")


def test_comparison_table_holds_the_fixture_and_paper_numbers(runs_root):
    runs, _ = find_runs([runs_root])
    markdown = tables.comparison_table(runs)
    assert _table_row(markdown, ["gdfrnet", "CIFAR-10"]) == [
        "gdfrnet", "CIFAR-10", "41.23", "96.88", "Table 9 net5", "-55.65", "3 of 3 (paper 200)",
        "JPEG CIFAR-10 (shared/data), ~1-2 points below lossless; 2,000 of 50,000 train / 500 of 10,000 test images",
    ]
    row = _table_row(markdown, ["net1", "CIFAR-100"])
    assert row[2:7] == ["28.57", "63.29", "Table 9 net1", "-34.72", "2 of 5 (paper 200)"]


def test_paper_tables_show_measured_results_beside_their_rows(runs_root):
    runs, _ = find_runs([runs_root])
    table9 = tables.paper_table("table9", runs)
    header = _table_row(table9, ["model", "variant"])
    assert header == ["model", "variant", "CIFAR-10 paper", "CIFAR-10 measured", "CIFAR-100 paper",
                      "CIFAR-100 measured", "SVHN paper", "Imagenette paper", "Imagewoof paper"]
    assert _table_row(table9, ["net5"]) == ["net5", "net5", "96.88", "41.23 (3 ep)", "80.57", "", "97.69", "90.59", "82.23"]
    assert _table_row(table9, ["net1"]) == ["net1", "net1", "89.60", "", "63.29", "28.57 (2 ep)", "96.21", "87.54", "79.04"]
    assert _table_row(table9, ["net2"])[-2:] == ["—", "—"]
    table7 = tables.paper_table("table7", runs)
    assert _table_row(table7, ["GDFRNet"])[2:4] == ["96.88", "41.23 (3 ep)"]
    assert _table_row(table7, ["ResNet-34", "net1"])[2:4] == ["89.60", ""]
    assert _table_row(table7, ["SCAM-Net"]) [1:] == ["—", "96.28", "", "80.40", "", "97.25", "—", "—"]
    table4 = tables.paper_table("table4", runs)
    assert _table_row(table4, ["C", "frm-c"])[2:4] == ["96.88", "41.23 (3 ep)"]
    assert _table_row(table4, ["A", "frm-a"])[2:4] == ["96.45", ""]


def _fake_counter(variant, image_size, num_classes, **overrides):
    params = {"gdfrnet": 43_139_772, "gdfrnet-dense": 54_423_036, "net2": 21_282_122, "net1": 21_300_000}[variant]
    return types.SimpleNamespace(params=params, macs=1_523_338_240, macs_tconv_output_convention=2_328_644_608)


def test_complexity_table_shows_both_mac_conventions(runs_root, monkeypatch):
    runs, _ = find_runs([runs_root])
    monkeypatch.setattr(report, "_counter", lambda: _fake_counter)
    markdown = tables.complexity_table(report.complexity_counts(runs))
    row = _table_row(markdown, ["GDFRNet(ours)", "gdfrnet"])
    assert row[2:7] == ["56.45", "43.14", "2.56", "1.52", "2.33"]
    assert _table_row(markdown, ["ResNet-34", "net2"])[2:5] == ["21.28", "21.28", "1.16"]
    assert _table_row(markdown, ["—", "gdfrnet-dense"])[3] == "54.42"
    assert _table_row(markdown, ["QKFormer"])[2:5] == ["6.74", "—", "6.09"]


def test_complexity_falls_back_to_run_start_numbers(runs_root):
    runs, _ = find_runs([runs_root])
    markdown = tables.complexity_table(report.complexity_counts(runs, count=False))
    row = _table_row(markdown, ["GDFRNet(ours)", "gdfrnet"])
    assert row[2:7] == ["56.45", "43.21", "2.56", "1.50", "—"]
    assert "run_start of cifar10-gdfrnet" in row[7]
    assert _table_row(markdown, ["ResNet-34", "net2"])[3] == "—"  # no net2 run: unknown, not invented
    assert _table_row(markdown, ["—", "net1"])[3:6] == ["21.33", "—", "0.29"]


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        return image.size


def test_report_command_writes_markdown_and_readable_pngs(runs_root, tmp_path):
    from keras_gdfr.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["report", str(runs_root), "--out", str(out), "--no-count"])
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text()
    for text in ("41.23", "96.88", "-55.65", "28.57", "63.29", "-34.72", "3 of 3 (paper 200)",
                 "JPEG CIFAR-10 (shared/data), ~1-2 points below lossless", "43.21", "56.45",
                 "macro AUC", "Fig. 8", "Table 3 lists only"):
        assert text in markdown, text
    assert "broken" in markdown  # the skipped directory is named
    embedded = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    expected_sizes = {
        "figures/accuracy-vs-paper.png": figures.CURVES_SIZE,
        "figures/cifar10-gdfrnet-curves.png": figures.CURVES_SIZE,
        "figures/cifar10-gdfrnet-confusion.png": figures.CONFUSION_SIZE,
        "figures/cifar10-gdfrnet-roc.png": figures.ROC_SIZE,
        "figures/cifar100-net1-curves.png": figures.CURVES_SIZE,
    }
    assert sorted(embedded) == sorted(expected_sizes)
    for relative, size in expected_sizes.items():
        assert _png_size(out / relative) == size, relative
    assert "No eval.json" in markdown  # for the net1 run


def test_report_counts_real_variants(runs_root, tmp_path):
    path, _ = report.write_report([runs_root / "cifar10-gdfrnet"], tmp_path / "out")
    markdown = path.read_text()
    row = _table_row(markdown, ["ResNet-34", "net2"])
    assert row[2:5] == ["21.28", "21.28", "1.16"]  # the CIFAR ResNet-34 is exactly Table 8's row
    assert "keras_gdfr.counting" in row[7]


def test_figures_of_a_100_class_run_and_of_a_run_without_epochs(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 100, 2000)
    probs = rng.dirichlet(np.ones(100), size=2000)
    ev = evaluation.evaluation_report(y, probs, [f"c{i}" for i in range(100)])
    cm_path = figures.plot_confusion_matrix(ev["confusion_matrix"], ev["class_names"], tmp_path / "cm.png")
    roc_path = figures.plot_roc_curves(ev["roc"], tmp_path / "roc.png", macro_auc=ev["macro_auc"])
    curves = figures.plot_training_curves([], tmp_path / "curves.png", "empty")
    assert _png_size(cm_path) == figures.CONFUSION_SIZE
    assert _png_size(roc_path) == figures.ROC_SIZE
    assert _png_size(curves) == figures.CURVES_SIZE


def test_a_jpeg_cifar10_image_folder_is_recognised_by_its_files(tmp_path):
    folder = tmp_path / "my-cifar"
    (folder / "train" / "cat").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "train" / "cat" / "0001.jpg")
    run_dir = write_run(tmp_path / "runs", "r", variant="net2", dataset="cifar10", epochs=1, val_accuracies=[0.1],
                        test_accuracy=0.1, params=1, macs=1, data_dir=str(folder))
    assert describe_data(load_run(run_dir)).startswith("JPEG CIFAR-10 (shared/data), ~1-2 points below lossless")
    png_folder = tmp_path / "png-cifar"
    (png_folder / "train" / "cat").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(png_folder / "train" / "cat" / "0001.png")
    run_dir = write_run(tmp_path / "runs2", "r", variant="net2", dataset="cifar10", epochs=1, val_accuracies=[0.1],
                        test_accuracy=0.1, params=1, macs=1, data_dir=str(png_folder))
    assert describe_data(load_run(run_dir)).startswith(f"data folder `{png_folder}` (source imagefolder)")


def test_a_run_with_model_overrides_is_not_compared_with_the_paper(runs_root, tmp_path):
    narrowed = write_run(runs_root, "cifar10-net2-narrow", variant="net2", dataset="cifar10", epochs=1,
                         val_accuracies=[0.2], test_accuracy=0.2, params=80_000, macs=4_000_000,
                         overrides={"depths": [1, 1, 1, 1], "widths": [8, 16, 32, 64]})
    run = load_run(narrowed)
    assert run.label == "net2 (depths=[1, 1, 1, 1], widths=[8, 16, 32, 64])"
    assert tables.run_variants(run) == frozenset()
    # Overrides that land on a named configuration are that network: net2 + FRM is net3 (= branch-a).
    assert tables.network_variants("net2", {"frm": True}) == tables.equivalent_variants("net3")
    runs, _ = find_runs([runs_root])
    row = _table_row(tables.comparison_table(runs), [run.label, "CIFAR-10"])
    assert row[2:6] == ["20.00", "—", "not in the paper (model overrides)", "—"]
    assert _table_row(tables.paper_table("table9", runs), ["net2"])[3] == ""
    counts = report.complexity_counts([run], count=False)
    assert counts[run.label]["params"] == 80_000


def test_figures_with_long_labels_missing_numbers_and_one_epoch(tmp_path):
    label = "net5 (widths=[16, 32, 64, 128], depths=[1, 1, 1, 1], reduction=8) / CIFAR-10"
    assert all(len(line) <= figures.TICK_LABEL_WIDTH for line in figures._wrap(label, figures.TICK_LABEL_WIDTH).split("\n"))
    bars = figures.plot_accuracy_vs_paper([(label, 31.4, None), ("net2 / CIFAR-10", None, None)], tmp_path / "a.png")
    mixed = figures.plot_accuracy_vs_paper([(label, 31.4, None), ("net5 / CIFAR-10", 40.0, 96.88)], tmp_path / "b.png")
    one_epoch = [dict(epoch=1, loss=2.3, accuracy=0.1, val_loss=2.2, val_accuracy=0.12)]
    curves = figures.plot_training_curves(one_epoch, tmp_path / "c.png", label)
    roc = figures.plot_roc_curves(cifar10_eval(correct=400)["roc"], tmp_path / "r.png", label, macro_auc=0.7)
    for path, size in ((bars, figures.CURVES_SIZE), (mixed, figures.CURVES_SIZE), (curves, figures.CURVES_SIZE),
                       (roc, figures.ROC_SIZE)):
        assert _png_size(path) == size


def test_small_counts_keep_two_significant_digits():
    assert tables.fmt_count(1_586_432, 1e9) == "0.0016"  # a narrowed net1's MACs, not "0.00"
    assert tables.fmt_count(16_172_288, 1e9, 3) == "0.016"
    assert tables.fmt_count(1_523_338_240, 1e9) == "1.52"
    assert tables.fmt_count(290_000_000, 1e9) == "0.29"
    assert (tables.fmt_count(0, 1e9), tables.fmt_count(None, 1e9)) == ("0.00", tables.DASH)
