"""`gdfr sweep`: one train process per variant, resumable after an interruption."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("gpus, says_cpu", [("", True), ("0", False)])
def test_the_plan_says_when_its_assumed_gpu_figure_meets_a_machine_without_one(tmp_path, monkeypatch, gpus, says_cpu):
    """No --bench/--tflops and no GPU visible: the plan's wall time is a GPU's, and it says so."""
    from keras_gdfr.cli import main

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
    result = CliRunner().invoke(main, ["sweep", "recipes/cifar10.toml", "--variants", "net2", "--runs",
                                       str(tmp_path / "runs"), "--dry-run"])
    assert result.exit_code == 0, result.output
    estimate = next(line for line in result.output.splitlines() if line.startswith("estimate:"))
    assert ("no GPU is visible here" in estimate) is says_cpu and "--bench" in estimate


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


# --- the grid, the plan, the local engine (issue 20) -------------------------------------

# A stand-in train that records its slot's environment and start/end times, and kills
# itself (SIGKILL) on its first attempt for the run directory named in FAKE_KILL_ONCE.
FAKE_PARALLEL = FAKE_TRAIN.replace(
    'with open(os.environ["FAKE_LOG"], "a") as log:',
    'import signal, time\n'
    'start = time.time(); time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))\n'
    'if os.environ.get("FAKE_KILL_ONCE") == run_dir.name and "--resume" not in args:\n'
    '    run_dir.mkdir(parents=True, exist_ok=True)\n'
    '    (run_dir / "recipe.json").write_text(json.dumps({"model": {"variant": variant}}))\n'
    '    (run_dir / "events.jsonl").write_text(json.dumps({"event": "run_start", "time": 0.0}) + "\\n")\n'
    '    print("about to be killed", flush=True)\n'
    '    os.kill(os.getpid(), signal.SIGKILL)\n'
    'args = args + ["@", os.environ.get("OMP_NUM_THREADS", ""), os.environ.get("CUDA_VISIBLE_DEVICES", ""),\n'
    '               str(start), str(time.time())]\n'
    'with open(os.environ["FAKE_LOG"], "a") as log:',
)


@pytest.fixture
def fake_parallel(tmp_path, monkeypatch):
    script = tmp_path / "fake_parallel.py"
    script.write_text(FAKE_PARALLEL)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    for name in ("FAKE_INTERRUPT", "FAKE_KILL_ONCE", "FAKE_SLEEP"):
        monkeypatch.delenv(name, raising=False)

    def calls() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return [sys.executable, str(script)], calls


def test_seeded_cells_are_named_and_seeded(tmp_path):
    steps = sweeping.plan_cells(["cifar10", "recipes/svhn.toml"], ["net2", "net5"], [0, 1], tmp_path)
    assert [s.run_dir.name for s in steps] == [
        "cifar10-net2-s0", "cifar10-net2-s1", "cifar10-net5-s0", "cifar10-net5-s1",
        "svhn-net2-s0", "svhn-net2-s1", "svhn-net5-s0", "svhn-net5-s1"]
    args = sweeping.train_arguments("cifar10", steps[1], ["--set", "train.seed=7"])
    assert args[-4:] == ["--set", "train.seed=7", "--set", "train.seed=1"]  # the cell's seed wins


def test_local_slots_pin_one_gpu_each_or_divide_the_cores():
    assert sweeping.local_slots("auto", gpus=["0", "1", "3"]) == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}, {"CUDA_VISIBLE_DEVICES": "3"}]
    assert [s["CUDA_VISIBLE_DEVICES"] for s in sweeping.local_slots(3, gpus=["0", "1"])] == ["0", "1", "0"]
    assert sweeping.local_slots(2, gpus=[], cores=16) == [dict.fromkeys(sweeping.THREAD_VARIABLES, "8")] * 2
    assert sweeping.local_slots(3, gpus=[], cores=2) == [dict.fromkeys(sweeping.THREAD_VARIABLES, "1")] * 3
    assert len(sweeping.local_slots("auto", gpus=[], cores=2)) == 1


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert sweeping.visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sweeping.visible_gpus() == []


def test_parallel_runs_overlap_each_in_its_slot_and_a_killed_run_is_resumed(tmp_path, fake_parallel, monkeypatch):
    command, calls = fake_parallel
    runs = tmp_path / "runs"
    monkeypatch.setenv("FAKE_SLEEP", "1.0")
    monkeypatch.setenv("FAKE_KILL_ONCE", "r-net2-s1")
    lines = []
    steps = sweeping.plan_cells(["r.toml"], ["net1", "net2"], [0, 1], runs)
    slots = sweeping.local_slots(2, gpus=["0", "1"])
    sweeping.run_steps(steps, ["--epochs", "2"], slots=slots, command=command, echo=lines.append)
    assert [(s.run_dir.name, s.returncode, s.attempts) for s in steps] == [
        ("r-net1-s0", 0, 1), ("r-net1-s1", 0, 1), ("r-net2-s0", 0, 1), ("r-net2-s1", 0, 2)]
    assert all(sweeping.run_state(s.run_dir) == "completed" for s in steps)
    recorded = calls()
    # The killed cell came back with --resume; the others were trained once, seeded.
    assert [c[:2] for c in recorded if c[0] == "--resume"] == [["--resume", str(runs / "r-net2-s1")]]
    fresh = [c for c in recorded if c[0] != "--resume"]
    assert sorted(c[c.index("--run-dir") + 1] for c in fresh) == [str(runs / n) for n in ("r-net1-s0", "r-net1-s1", "r-net2-s0")]
    # Two at a time, each on its own GPU: the first two ran at once, on devices 0 and 1.
    first, second = sorted(fresh, key=lambda c: float(c[-2]))[:2]
    assert float(second[-2]) < float(first[-1]) and {first[-3], second[-3]} == {"0", "1"}
    # With several at once, each child's output goes to its run directory's output.log.
    assert "about to be killed" in (runs / "r-net2-s1" / "output.log").read_text()
    assert "[sweep 4/4] r net2 s1: exit status -9 (killed by SIGKILL); retrying with --resume" in lines


def test_run_cell_resumes_a_killed_run_in_the_same_process(tmp_path, fake_parallel, monkeypatch):
    """The Ray task's body: one cell to its end, a kill retried with --resume, output in output.log."""
    command, calls = fake_parallel
    monkeypatch.setenv("FAKE_KILL_ONCE", "r-net2-s0")
    [step] = sweeping.plan_cells(["r.toml"], ["net2"], [0], tmp_path)
    sweeping.run_cell(step, ["--epochs", "2"], command, retries=2)
    assert (step.returncode, step.attempts, step.action) == (0, 2, "resume")
    assert [c[:2] for c in calls()] == [["--resume", str(tmp_path / "r-net2-s0")]]
    assert "about to be killed" in (tmp_path / "r-net2-s0" / "output.log").read_text()
    again = sweeping.run_cell(sweeping.plan_cells(["r.toml"], ["net2"], [0], tmp_path)[0], [], command, retries=2)
    assert (again.action, again.attempts) == ("skip", 0)


def test_a_cell_failing_all_its_retries_is_reported_and_the_others_go_on(tmp_path):
    broken = [sys.executable, "-c", "import sys; print('CUDA out of memory'); sys.exit(1 if 'net1' in ' '.join(sys.argv) else 0)"]
    steps = sweeping.plan_cells(["r.toml"], ["net1", "net2"], None, tmp_path)
    lines = []
    sweeping.run_steps(steps, retries=1, slots=[{}, {}], command=broken, echo=lines.append)
    assert [(s.returncode, s.attempts) for s in steps] == [(1, 2), (0, 1)]
    assert steps[0].error == "CUDA out of memory"
    assert (f"[sweep 1/2] r net1: failed with exit status 1 after 2 attempt(s): CUDA out of memory "
            f"({tmp_path / 'r-net1'}); going on with the others") in lines
    assert "last error: CUDA out of memory" in sweeping.summary(steps)


def test_usage_errors_and_interruptions_are_not_retried():
    step = sweeping.SweepStep("net1", pathlib.Path("x"), "train", attempts=1)
    for code, retried in ((2, False), (130, False), (-2, False), (0, False), (1, True), (-9, True)):
        step.returncode = code
        assert sweeping.should_retry(step, 2) is retried, code
    step.returncode, step.attempts = -9, 3
    assert not sweeping.should_retry(step, 2)


def test_paper_tables_name_the_grids():
    from keras_gdfr.report.tables import paper_grid

    assert paper_grid("9").variants == ("net1", "net2", "net3", "net4", "net5")
    assert paper_grid("Table 9").datasets == ("cifar10", "cifar100", "svhn", "imagenette", "imagewoof")
    assert paper_grid("4").variants == ("frm-a", "frm-b", "frm-c", "frm-d")
    assert paper_grid("7").variants == ("net1", "gdfrnet")  # the other models are not variants
    tiny = paper_grid("9-tiny")
    assert tiny.variants == ("tiny-net2", "tiny-net3", "tiny-net4", "tiny-net5")
    assert tiny.paper_value("tiny-net5", "cifar10") == 96.88 and tiny.paper_value("tiny-net2", "imagenette") is None
    assert paper_grid("3").variants == ("tconv-k2", "tconv-k4", "tconv-k6", "tconv-k8", "tconv-k10")
    with pytest.raises(ValueError, match=r"^unknown table '10' \(known: 3, 4, 5, 6, 7, 9, 9-tiny, fig8\)$"):
        paper_grid("10")


def test_grid_resolution_and_its_errors():
    from keras_gdfr.report.sweep_plan import PlanError, resolve_grid

    assert resolve_grid(["9"], [], ["tiny"]) == (
        ["cifar10", "cifar100", "svhn", "imagenette", "imagewoof"], ["net1", "net2", "net3", "net4", "net5", "tiny"])
    assert resolve_grid(["9-tiny"], ["recipes/cifar10.toml"], []) == (
        ["recipes/cifar10.toml"], ["tiny-net2", "tiny-net3", "tiny-net4", "tiny-net5"])
    with pytest.raises(PlanError, match="^3: the paper names no datasets for it; give the RECIPE"):
        resolve_grid(["3"], [], [])
    with pytest.raises(PlanError, match="^nothing to sweep"):
        resolve_grid([], ["cifar10"], [])


def test_cell_cost_and_plan_totals_by_hand(tmp_path):
    from keras_gdfr.report import sweep_plan

    cost = sweep_plan.CellCost(epochs=200, train_images=50_000, test_images=10_000, macs=1_523_000_000)
    # 200 x (50,000 x 6 + 10,000 x 2) x 1.523e9 = 9.7472e16 FLOPs; at 20 TFLOP/s 4873.6 s = 1.354 h
    assert cost.flops() == pytest.approx(9.7472e16)
    steps = sweeping.plan_cells(["cifar10"], ["net5"], [0, 1], tmp_path)
    text = sweep_plan.plan_text(steps, {id(s): cost for s in steps}, 20.0, "assumed", slots=2, runs_dir=tmp_path)
    assert text.splitlines()[1].split() == ["cifar10", "net5", "2", "2", "400", "1.523", "2.71"]
    assert "2 runs (2 to train or resume, 0 completed), 400 epochs" in text
    assert "estimate: 2.7 device-hours at 20 TFLOP/s sustained (assumed); about 1.4 h of wall time with 2 at once" in text
    on_ray = sweep_plan.plan_text(steps, {id(s): cost for s in steps}, 20.0, "assumed", slots=None, runs_dir=tmp_path)
    assert on_ray.endswith("(assumed); on Ray, as many at once as the cluster's resources allow")


def test_bench_figure_prices_the_plan(tmp_path):
    from keras_gdfr.report.sweep_plan import PlanError, bench_tflops

    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"variant": "gdfrnet", "train_tflops": 31.5}) + "\n" + json.dumps({"error": "x"}) + "\n")
    assert bench_tflops(path) == 31.5
    path.write_text("{}\n")
    with pytest.raises(PlanError, match=r"no `gdfr bench --json` line with train_tflops"):
        bench_tflops(path)


def _sweep_cli(*args, input=None):
    from keras_gdfr.cli import main

    return CliRunner().invoke(main, ["sweep", *args], input=input)


def test_sweep_command_bad_input_is_one_line_before_anything_starts(tmp_path):
    runs = tmp_path / "runs"
    result = _sweep_cli("--table", "10", "--runs", str(runs))
    assert result.exit_code == 2 and result.output.strip().startswith("error: unknown table '10' (known: 3, 4,")
    result = _sweep_cli("cifar11", "--variants", "tiny", "--runs", str(runs), "--yes")
    assert result.exit_code == 2 and "cifar11" in result.output and len(result.output.strip().splitlines()) == 1
    assert not runs.exists()


def test_sweep_command_asks_before_it_starts(tmp_path):
    runs = tmp_path / "runs"
    result = _sweep_cli("cifar10", "--variants", "tiny", "--seeds", "2", "--epochs", "1", "--runs", str(runs), input="n\n")
    assert result.exit_code == 1 and "nothing started (pass --yes to start without asking)" in result.output
    assert "2 runs (2 to train or resume, 0 completed), 2 epochs" in result.output
    assert not runs.exists()


def test_ray_engine_missing_or_unreachable_is_one_line(tmp_path, monkeypatch):
    import socket

    from keras_gdfr.report import sweep_ray

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(sweep_ray.RayEngineError, match=rf"^no Ray cluster answers at 127.0.0.1:{port} \("):
        sweep_ray.check_address(f"127.0.0.1:{port}")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    result = _sweep_cli("cifar10", "--variants", "tiny", "--engine", "ray", "--runs", str(tmp_path / "r"), "--yes")
    assert result.exit_code == 1
    assert result.output.strip() == 'error: the ray engine needs Ray: pip install -e ".[ray]" (or pip install "ray[default]")'


def test_sweep_command_names_a_ray_address_that_does_not_answer(tmp_path):
    import socket

    pytest.importorskip("ray")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _sweep_cli("cifar10", "--variants", "tiny", "--engine", "ray", "--address", f"127.0.0.1:{port}",
                        "--runs", str(tmp_path / "r"), "--yes")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert result.output.startswith(f"error: no Ray cluster answers at 127.0.0.1:{port} (")
    assert not (tmp_path / "r").exists()


def test_manifest_records_the_grid_once(tmp_path):
    steps = sweeping.plan_cells(["cifar10"], ["net2", "net5"], [0], tmp_path)
    sweeping.write_manifest(tmp_path, steps, "table 9 x cifar10")
    sweeping.write_manifest(tmp_path, steps + sweeping.plan_cells(["cifar10"], ["net5"], [1], tmp_path), "again")
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["name"] == "again"
    assert [(c["run_dir"], c["seed"]) for c in manifest["cells"]] == [
        ("cifar10-net2-s0", 0), ("cifar10-net5-s0", 0), ("cifar10-net5-s1", 1)]


# --- real sweeps: 2 variants x 2 seeds of tiny 1-epoch runs, one run killed mid-epoch --------

REAL_VARIANTS = ["tiny-net2", "tiny-net5"]
KILLED = "cifar10-tiny-net5-s1"


def _real_train_args(cifar10_zip) -> list[str]:
    return ["--epochs", "1", "--data", str(cifar10_zip), "--limit-train", "128", "--limit-test", "64",
            "--set", "train.batch_size=16", "--set", "model.overrides.widths=[8,16,16,32]"]


def _kill_when_training(run_dir: pathlib.Path, killed: list, timeout: float = 300.0) -> None:
    """SIGKILL the trainer of `run_dir` as soon as its run_start is written (it is then in epoch 1)."""
    import signal
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            lines = (run_dir / "events.jsonl").read_text().splitlines()
        except OSError:
            lines = []
        starts = [json.loads(line) for line in lines if '"run_start"' in line]
        if starts:
            os.kill(starts[0]["pid"], signal.SIGKILL)
            killed.append(starts[0]["pid"])
            return
        time.sleep(0.02)


def _check_real_sweep(steps, runs: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """Four completed runs; the killed one resumed by a retry; the report shows mean ± std over the seeds."""
    from keras_gdfr.report.report import write_report
    from keras_gdfr.report.runs import load_run

    assert sorted((s.run_dir.name, s.returncode, s.attempts) for s in steps) == [
        ("cifar10-tiny-net2-s0", 0, 1), ("cifar10-tiny-net2-s1", 0, 1),
        ("cifar10-tiny-net5-s0", 0, 1), ("cifar10-tiny-net5-s1", 0, 2)]
    killed = load_run(runs / KILLED)
    kinds = [e["event"] for e in killed.events if e["event"] in ("run_start", "epoch_end", "run_end")]
    # Killed in epoch 1 (no epoch_end, no run_end), then `gdfr train --resume` trained it to the end.
    assert kinds == ["run_start", "run_start", "epoch_end", "run_end"] and killed.completed
    assert killed.recipe["train"]["seed"] == 1 and killed.overrides == {"widths": [8, 16, 16, 32]}
    path, skipped = write_report([runs], tmp_path / "report", count=False)
    text = path.read_text()
    assert skipped == [] and "## Over seeds" in text
    for variant in REAL_VARIANTS:
        runs_of = [load_run(runs / f"cifar10-{variant}-s{seed}") for seed in (0, 1)]
        accuracies = [100 * r.test_accuracy for r in runs_of]
        mean = sum(accuracies) / 2
        std = abs(accuracies[0] - accuracies[1]) / 2 ** 0.5  # the sample std of two values
        assert f"{mean:.2f} ± {std:.2f} (n=2)" in text


@pytest.mark.slow
def test_real_sweep_two_at_once_survives_a_killed_run(tmp_path, cifar10_zip):
    import threading

    recipe = str(pathlib.Path(__file__).resolve().parents[1] / "recipes" / "cifar10.toml")
    runs = tmp_path / "runs"
    killed: list = []
    watcher = threading.Thread(target=_kill_when_training, args=(runs / KILLED, killed), daemon=True)
    watcher.start()
    steps = sweeping.plan_cells([recipe], REAL_VARIANTS, [0, 1], runs)
    sweeping.run_steps(steps, _real_train_args(cifar10_zip), parallel=2, echo=lambda _: None)
    watcher.join(1)
    assert killed, "the run to kill never started"
    _check_real_sweep(steps, runs, tmp_path)
    again = sweeping.plan_cells([recipe], REAL_VARIANTS, [0, 1], runs)
    assert [s.action for s in again] == ["skip"] * 4  # a relaunch has nothing left to do


@pytest.mark.slow
def test_real_sweep_on_a_local_ray_instance_survives_a_killed_run(tmp_path, cifar10_zip):
    import threading

    ray = pytest.importorskip("ray")
    from keras_gdfr.report import sweep_ray

    recipe = str(pathlib.Path(__file__).resolve().parents[1] / "recipes" / "cifar10.toml")
    runs = tmp_path / "runs"
    killed: list = []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # local, started and stopped here
    try:
        watcher = threading.Thread(target=_kill_when_training, args=(runs / KILLED, killed), daemon=True)
        watcher.start()
        steps = sweeping.plan_cells([recipe], REAL_VARIANTS, [0, 1], runs)
        lines = []
        sweep_ray.run_on_ray(steps, _real_train_args(cifar10_zip), echo=lines.append)
        watcher.join(1)
    finally:
        ray.shutdown()
    assert killed, "the run to kill never started"
    assert "[sweep 4/4] cifar10 tiny-net5 s1: done after 2 attempts" in lines
    _check_real_sweep(steps, runs, tmp_path)
