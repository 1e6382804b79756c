"""`gdfr sweep`: one train process per variant, resumable after an interruption."""

from __future__ import annotations

import json
import pathlib
import sys
import textwrap

import pytest
from click.testing import CliRunner

from keras_gdfr.report import sweep as sweeping

# A stand-in for `gdfr train RECIPE --variant V --run-dir DIR [options]` and
# `gdfr train --resume DIR`: it writes
# a minimal run directory, logs its arguments, and stops "interrupted" (exit 130) for the
# variant named in FAKE_INTERRUPT (after one epoch), as a Ctrl-C'd gdfr train would.
FAKE_TRAIN = textwrap.dedent(
    """
    import json, os, pathlib, sys
    args = sys.argv[1:]
    if args[0] == "--resume":
        run_dir = pathlib.Path(args[1])
        variant = json.loads((run_dir / "recipe.json").read_text())["model"]["variant"]
    else:
        variant = args[args.index("--variant") + 1]
        run_dir = pathlib.Path(args[args.index("--run-dir") + 1])
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.json").write_text(json.dumps({"model": {"variant": variant}}))
    interrupted = os.environ.get("FAKE_INTERRUPT") == variant
    events = [{"event": "run_start", "time": 0.0, "variant": variant, "epochs": 2,
               "initial_epoch": 1 if "--resume" in args else 0}]
    events.append({"event": "epoch_end", "time": 1.0, "epoch": 2 if "--resume" in args else 1})
    events.append({"event": "run_end", "time": 2.0, "status": "interrupted" if interrupted else "completed",
                   "epoch": 1 if interrupted else 2, "test": None})
    with open(run_dir / "events.jsonl", "a") as f:
        f.write("".join(json.dumps(e) + "\\n" for e in events))
    sys.exit(130 if interrupted else 0)
    """
)


@pytest.fixture
def fake_train(tmp_path, monkeypatch):
    """The fake train command and the file where each call's arguments are logged."""
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.delenv("FAKE_INTERRUPT", raising=False)

    def calls() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return [sys.executable, str(script)], calls


def test_run_dirs_are_named_after_recipe_and_variant(tmp_path):
    assert sweeping.run_dir_for(tmp_path, "recipes/cifar10.toml", "net1") == tmp_path / "cifar10-net1"
    assert sweeping.run_dir_for(tmp_path, "cifar10", "net1") == tmp_path / "cifar10-net1"


def test_interrupted_sweep_resumes_with_the_rest(tmp_path, fake_train, monkeypatch):
    command, calls = fake_train
    runs = tmp_path / "runs"
    variants = ["net1", "net2", "net3"]
    train_args = ["--epochs", "2", "--set", "train.seed=1"]

    monkeypatch.setenv("FAKE_INTERRUPT", "net2")
    lines = []
    steps = sweeping.run_sweep("cifar10.toml", variants, runs, train_args, command=command, echo=lines.append)
    assert [(s.variant, s.action, s.returncode) for s in steps] == [
        ("net1", "train", 0), ("net2", "train", 130), ("net3", "train", None)]
    assert "interrupted" in lines[-1]
    assert [sweeping.run_state(runs / f"cifar10-{v}") for v in variants] == ["completed", "incomplete", "absent"]

    monkeypatch.delenv("FAKE_INTERRUPT")
    steps = sweeping.run_sweep("cifar10.toml", variants, runs, train_args, command=command, echo=lines.append)
    assert [(s.variant, s.action, s.returncode) for s in steps] == [
        ("net1", "skip", None), ("net2", "resume", 0), ("net3", "train", 0)]
    assert [sweeping.run_state(runs / f"cifar10-{v}") for v in variants] == ["completed"] * 3
    assert calls() == [
        ["cifar10.toml", "--variant", "net1", "--run-dir", str(runs / "cifar10-net1"), *train_args],
        ["cifar10.toml", "--variant", "net2", "--run-dir", str(runs / "cifar10-net2"), *train_args],
        ["--resume", str(runs / "cifar10-net2")],
        ["cifar10.toml", "--variant", "net3", "--run-dir", str(runs / "cifar10-net3"), *train_args],
    ]
    assert "already completed" in sweeping.summary(steps)


def test_a_failed_variant_does_not_stop_the_sweep(tmp_path, fake_train):
    command, calls = fake_train
    broken = [sys.executable, "-c", "import sys; sys.exit(3 if 'net1' in sys.argv else 0)"]
    steps = sweeping.run_sweep("r.toml", ["net1", "net2"], tmp_path, command=broken, echo=lambda _: None)
    assert [s.returncode for s in steps] == [3, 0] and steps[0].failed


def test_sweep_command_passes_train_options_through(tmp_path):
    from keras_gdfr.cli import main

    runs = tmp_path / "runs"
    (runs / "cifar10-net2").mkdir(parents=True)
    (runs / "cifar10-net2" / "recipe.json").write_text("{}")
    (runs / "cifar10-net2" / "events.jsonl").write_text(json.dumps({"event": "run_start", "time": 0}) + "\n")
    result = CliRunner().invoke(main, [
        "sweep", "recipes/cifar10.toml", "--variants", "net1,net2", "--runs", str(runs), "--epochs", "3",
        "--data", "/data/cifar10", "--limit-train", "64", "--limit-test", "32", "--set", "train.seed=2",
        "--dry-run",
    ])
    assert result.exit_code == 0, result.output
    first, second = result.output.strip().splitlines()[-2:]
    options = "--epochs 3 --data /data/cifar10 --limit-train 64 --limit-test 32 --set train.seed=2"
    assert first.split() == ["cifar10", "net1", "train", "gdfr", "train", "recipes/cifar10.toml", "--variant", "net1",
                             "--run-dir", str(runs / "cifar10-net1"), *options.split()]
    assert second.split() == ["cifar10", "net2", "resume", "gdfr", "train", "--resume", str(runs / "cifar10-net2")]


def test_sweep_command_rejects_unknown_variants():
    from keras_gdfr.cli import main

    result = CliRunner().invoke(main, ["sweep", "r.toml", "--variants", "net1,nett2", "--dry-run"])
    assert result.exit_code != 0 and "nett2" in result.output


def _train_registered() -> bool:
    from keras_gdfr.cli import main

    return "train" in main.commands


@pytest.mark.slow
@pytest.mark.skipif(not _train_registered(), reason="`gdfr train` is not registered in keras_gdfr.cli yet")
def test_real_sweep_resumes_after_an_interruption(tmp_path, cifar10_zip):
    """Two narrowed variants with the real `gdfr train` on 20 images of the real CIFAR-10.

    Sweep 1 stops after its first variant (as if interrupted before the second) and that
    run's run_end is then removed (as if killed mid-run): sweep 2 resumes it with
    `gdfr train --resume` and trains the second variant; sweep 3 has nothing left to do.
    """
    from keras_gdfr.report.runs import load_run

    recipe = str(pathlib.Path(__file__).resolve().parents[1] / "recipes" / "cifar10.toml")
    runs = tmp_path / "runs"
    train_args = ["--epochs", "1", "--data", str(cifar10_zip), "--limit-train", "20", "--limit-test", "10",
                  "--set", "train.batch_size=10", "--set", "model.overrides.depths=[1,1,1,1]",
                  "--set", "model.overrides.widths=[8,16,32,64]"]
    quiet = lambda _: None  # noqa: E731

    first = sweeping.run_sweep(recipe, ["tiny"], runs, train_args, echo=quiet)
    assert [(s.action, s.returncode) for s in first] == [("train", 0)]
    tiny_events = runs / "cifar10-tiny" / "events.jsonl"
    lines = tiny_events.read_text().splitlines()
    assert json.loads(lines[-1])["event"] == "run_end"
    tiny_events.write_text("\n".join(lines[:-1]) + "\n")
    assert sweeping.run_state(runs / "cifar10-tiny") == "incomplete"

    second = sweeping.run_sweep(recipe, ["tiny", "net2"], runs, train_args, echo=quiet)
    assert [(s.variant, s.action, s.returncode) for s in second] == [("tiny", "resume", 0), ("net2", "train", 0)]
    tiny = load_run(runs / "cifar10-tiny")
    assert tiny.completed and [e["initial_epoch"] for e in tiny.events if e["event"] == "run_start"] == [0, 1]
    net2 = load_run(runs / "cifar10-net2")
    assert net2.completed and net2.variant == "net2" and net2.overrides["widths"] == [8, 16, 32, 64]

    third = sweeping.run_sweep(recipe, ["tiny", "net2"], runs, train_args, echo=quiet)
    assert [s.action for s in third] == ["skip", "skip"]

    # The real run directories feed `gdfr report` and `gdfr viz`.
    from keras_gdfr.report import viz
    from keras_gdfr.report.report import write_report
    from keras_gdfr.report.tables import fmt_pct

    path, skipped = write_report([runs], tmp_path / "report", count=False)
    markdown = path.read_text()
    assert skipped == [] and f"| {fmt_pct(net2.test_accuracy)} |" in markdown
    assert "JPEG CIFAR-10 (shared/data), ~1-2 points below lossless; 20 of 50,000 train / 10 of 10,000 test" in markdown
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 120, 40)).save(image)
    written = viz.visualize(runs / "cifar10-tiny", image, tmp_path / "viz")
    assert sorted(written) == ["fgcm", "fom", "frrb", "panel", "plain"]
