"""Off the training path under faults and bad input (issue 24): eval, predict, export, report, sweep, resume.

Nothing silently wrong; every failure one line naming the input, a non-zero exit, nothing half-written.
Read-only folders and full disks are real (tests/faults/mounted.sh: a read-only bind mount, a full
tmpfs): we may be root, for whom a chmod proves nothing.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests import data_fixtures as fx
from tests.test_integrity_cli import base_run, copy_run, error_line, snapshot  # noqa: F401 (base_run: a fixture)
from tests.test_training import REPO, events, gdfr

MOUNTED = REPO / "tests" / "faults" / "mounted.sh"


def mounted(mode: str, folder: pathlib.Path, out: pathlib.Path, *args) -> subprocess.CompletedProcess:
    """`gdfr ARGS` with `folder` read-only ("ro") or on a full disk ("full"); the files it saw, in out/files."""
    script = (f'"{sys.executable}" -m keras_gdfr.cli "$@"; rc=$?; '
              f'(cd "{folder}" && find . -type f ! -name .filler | sort) > "{out}/files"; exit $rc')
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(REPO)}
    result = subprocess.run([MOUNTED, mode, folder, "bash", "-c", script, "gdfr", *map(str, args)], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    if result.returncode == 77:
        pytest.skip("no mount can be made here (needs root or user namespaces)")
    return result


def files_in(folder: pathlib.Path) -> list[str]:
    return sorted(f"./{p.relative_to(folder)}" for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def other_data(tmp_path_factory) -> pathlib.Path:
    """40 test images of CIFAR-10's classes that are not the run's own."""
    return fx.imagefolder(tmp_path_factory.mktemp("other") / "other", per_class=(1, 4), splits=("train", "test"))


# ----------------------------------------------------------------------------- silently wrong


def test_eval_on_other_data_keeps_the_runs_own_eval_json(base_run, tmp_path, other_data):
    run_dir = copy_run(base_run, tmp_path)
    before = snapshot(run_dir)
    result = gdfr("eval", run_dir, "--data", other_data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"on 32 images -> {run_dir / 'eval-other.json'}" in result.stdout  # (the recipe's limit_test)
    assert json.loads((run_dir / "eval-other.json").read_text())["num_examples"] == 32
    after = snapshot(run_dir)
    assert after.pop("eval-other.json") and after == before  # eval.json (32 images of the run's data) kept


def test_eval_with_another_recipe_keeps_the_models_normalisation_and_refuses_another_size(base_run, tmp_path, other_data):
    model = base_run / "model.keras"
    own, svhn = tmp_path / "cifar10.json", tmp_path / "svhn.json"
    as_trained = gdfr("eval", model, "--recipe", "recipes/cifar10.toml", "--data", other_data, "--out", own)
    assert as_trained.returncode == 0, as_trained.stderr[-3000:]
    other = gdfr("eval", model, "--recipe", "recipes/svhn.toml", "--data", other_data, "--out", svhn)
    assert other.returncode == 0, other.stderr[-3000:]
    assert (f"warning: {model}: the model normalises with its own mean/std, not svhn's (the recipe's); "
            "evaluating with the model's own") in other.stderr
    first, second = json.loads(own.read_text()), json.loads(svhn.read_text())
    assert second["loss"] == pytest.approx(first["loss"], abs=1e-6)  # the same images through the same model
    assert second["confusion_matrix"] == first["confusion_matrix"]
    assert "DataWarning" not in other.stderr  # the size warning is one line
    large = gdfr("eval", model, "--recipe", "recipes/imagenette.toml", "--out", tmp_path / "in.json")
    assert large.returncode == 1
    assert error_line(large) == (f"error: {model}: the model takes 32 px images, the recipe's imagenette has "
                                 "256 px (recipes/imagenette.toml)")
    assert not (tmp_path / "in.json").exists()


def test_a_recipe_changed_since_the_start_is_refused_naming_the_key(base_run, tmp_path):
    run_dir = copy_run(base_run, tmp_path, epochs=3)  # more epochs: a change a resume may make
    recipe = json.loads((run_dir / "recipe.json").read_text())
    recipe["data"]["dataset"] = "svhn"
    (run_dir / "recipe.json").write_text(json.dumps(recipe))
    before = snapshot(run_dir)
    result = gdfr("train", "--resume", run_dir)
    assert result.returncode == 1
    line = error_line(result)
    assert snapshot(run_dir) == before  # refused before anything was written: no event either
    assert line.startswith(f"error: {run_dir / 'recipe.json'}: changed since the run started: data.dataset is "
                           "'svhn', the run started with 'cifar10'"), line
    assert "(a resume may change only train.devices, train.epochs, and train.milestones with train.epochs)" in line


def test_a_resume_runs_under_the_backend_the_run_started_with(base_run, tmp_path):
    run_dir = copy_run(base_run, tmp_path, epochs=3)
    before = snapshot(run_dir)
    refused = gdfr("train", "--resume", run_dir, backend="jax")
    assert refused.returncode == 1
    assert error_line(refused) == (
        f"error: {run_dir}: the run started under the torch backend, this process runs jax; a resume under "
        f"another backend does not continue it exactly. Run: KERAS_BACKEND=torch gdfr train --resume {run_dir}")
    assert snapshot(run_dir) == before
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}  # unset: Keras alone would pick tensorflow
    resumed = subprocess.run([sys.executable, "-m", "keras_gdfr.cli", "train", "--resume", str(run_dir)],
                             env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    starts = [e for e in events(run_dir) if e["event"] == "run_start"]
    assert [(e["backend"], e["initial_epoch"]) for e in starts] == [("torch", 0), ("torch", 2)]


def test_run_end_keeps_the_best_val_accuracy_after_a_second_signal_or_a_full_disk(tmp_path, monkeypatch):
    import errno

    from keras_gdfr.training import checkpoints, run
    from keras_gdfr.training.recipe import load_recipe

    state = {"epoch": 1, "best_val_accuracy": 0.375, "seed": 0}
    epoch_dir = tmp_path / "checkpoints" / "epoch-0001"
    epoch_dir.mkdir(parents=True)
    for name in checkpoints.CHECKPOINT_FILES:
        (epoch_dir / name).write_text(json.dumps(state))
    (tmp_path / "checkpoints" / "last.json").write_text('{"dir": "epoch-0001"}')
    recipe = load_recipe("recipes/cifar10.toml", variant="tiny")
    (tmp_path / "recipe.json").write_text(json.dumps(recipe.to_dict()))  # as every run directory has

    def second_signal(*args):
        raise KeyboardInterrupt

    def disk_full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run, "_run", second_signal)
    assert run._run_locked(recipe, tmp_path, True).status == "interrupted"
    monkeypatch.setattr(run, "_run", disk_full)
    with pytest.raises(OSError):
        run._run_locked(recipe, tmp_path, True)
    ends = [e for e in events(tmp_path) if e["event"] == "run_end"]
    assert [(e["status"], e["epoch"], e["best_val_accuracy"]) for e in ends] == [
        ("interrupted", 1, 0.375), ("failed", 1, 0.375)]
    assert [e["kind"] for e in events(tmp_path) if e["event"] == "error"] == ["disk_full"]


FAKE_TRAIN = textwrap.dedent("""
    import os, pathlib, signal, sys, time
    out = pathlib.Path(os.environ["FAKE_OUT"])
    def stop(signum, frame):
        (out / "child-stopped").write_text(signal.Signals(signum).name)
        sys.exit(130)
    signal.signal(signal.SIGTERM, stop)
    (out / "child-pid").write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)
""")

SWEEP = textwrap.dedent("""
    import sys
    from keras_gdfr.report import sweep
    sweep.default_train_command = lambda: [sys.executable, sys.argv[1]]
    from keras_gdfr.report.cli import sweep as command
    command.main(["cifar10", "--variants", "tiny", "--runs", sys.argv[2], "--yes"])
""")


def test_sigterm_to_a_sweep_stops_its_train_child(tmp_path):
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_OUT": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", SWEEP, tmp_path / "fake_train.py", tmp_path / "runs"], env=env,
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = None
    try:
        deadline = time.time() + 60
        while not (tmp_path / "child-pid").exists() and time.time() < deadline:
            time.sleep(0.05)
        child = int((tmp_path / "child-pid").read_text())
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 143, stderr
        assert (tmp_path / "child-stopped").read_text() == "SIGTERM"
        assert stderr.strip().splitlines()[-1] == (
            f"sweep terminated (SIGTERM): gdfr train (pid {child}) stopped with exit status 130, its checkpoint "
            "kept; run the same command again to resume")
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    finally:
        process.kill()
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_imagewoof_one_level_too_high_names_the_folder_and_downloads_nothing(tmp_path, monkeypatch):
    from keras_gdfr.data import download as downloads
    from keras_gdfr.data.errors import DataError
    from keras_gdfr.data.sources import load_dataset

    top = fx.imagewoof_tree(tmp_path / "datasets" / "imagewoof")  # datasets/imagewoof/imagewoof2/{train,val}
    monkeypatch.setattr(downloads, "download", lambda *a, **k: pytest.fail("tried to download"))
    listing = sorted(tmp_path.rglob("*"))
    with pytest.raises(DataError) as caught:
        load_dataset("imagewoof", "train", data_dir=tmp_path / "datasets")
    assert str(caught.value).startswith(f"{tmp_path / 'datasets'}: found no imagewoof data here")
    assert str(caught.value).endswith(f"pass the folder that holds it: {tmp_path / 'datasets' / 'imagewoof'}")
    assert sorted(tmp_path.rglob("*")) == listing
    assert top.is_dir()


def test_a_gtsrb_test_csv_without_a_class_is_refused(tmp_path):
    from keras_gdfr.data.errors import DataError
    from keras_gdfr.data.sources import load_dataset

    fx.gtsrb_tree(tmp_path, per_class=1, test_labels=[label for label in range(43) if label != 12])
    with pytest.raises(DataError, match=r"GT-final_test.csv: labels 42 of the 43 classes; no test image of class "
                                        r"00012 \(an incomplete or different file\?\)$"):
        load_dataset("gtsrb", "test", data_dir=tmp_path, limit=50)


# ----------------------------------------------------------------------------- tracebacks -> one line


@pytest.fixture(scope="module")
def images(tmp_path_factory, base_run) -> dict:
    """Two good images, a non-image and a truncated JPEG."""
    folder = tmp_path_factory.mktemp("images")
    good = [folder / "a.png", folder / "b.png"]
    for k, path in enumerate(good):
        fx.solid(fx.color(k, 0), 32, 32).save(path)
    (folder / "notes.jpg").write_text("not an image\n")
    jpeg = folder / "cut.jpg"
    fx.solid(fx.color(3, 0), 32, 32).save(jpeg, format="JPEG")
    jpeg.write_bytes(jpeg.read_bytes()[:60])
    return {"good": good, "text": folder / "notes.jpg", "cut": jpeg}


def test_predict_reports_bad_images_and_predicts_the_rest(base_run, images):
    files = [images["good"][0], images["text"], images["cut"], images["good"][1]]
    result = gdfr("predict", base_run, *files, "--json", "--top-k", "10")
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["path"] for row in rows] == [str(images["good"][0]), str(images["good"][1])]
    assert all(len(row["top"]) == 10 for row in rows)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0] == f"error: {images['text']}: cannot read the image (not an image format PIL knows)"
    assert errors[1].startswith(f"error: {images['cut']}: cannot read the image (")
    assert errors[2] == "error: 2 of 4 image(s) could not be read" and "Traceback" not in result.stderr


def test_export_with_a_non_image_is_one_line(base_run, tmp_path, images):
    result = gdfr("export", base_run, "--format", "keras", "--out", tmp_path / "m.keras", "--images", images["text"])
    assert result.returncode == 1
    assert error_line(result) == (f"error: {images['text']}: cannot read the image (not an image format PIL knows); "
                                  "--images takes image files")
    assert not list(tmp_path.iterdir())


def test_eval_out_into_a_missing_folder_fails_before_evaluating(base_run, tmp_path):
    result = gdfr("eval", base_run, "--out", tmp_path / "missing" / "e.json")
    assert result.returncode == 1
    assert error_line(result) == (f"error: {tmp_path / 'missing' / 'e.json'}: cannot write there "
                                  f"({tmp_path / 'missing'}: no such folder); nothing was evaluated")


@pytest.mark.parametrize("command", ["eval", "export", "pack"])
def test_a_read_only_run_directory_is_one_line(base_run, tmp_path, command, cifar10_zip):
    run_dir = copy_run(base_run, tmp_path)
    listing = files_in(run_dir)
    args = {"eval": ["eval", run_dir], "export": ["export", run_dir, "--format", "keras", "--count", "4"],
            "pack": ["pack", fx.imagefolder(tmp_path / "folder", per_class=(1, 1), splits=("train", "test")),
                     run_dir / "data.npz", "--dataset", "cifar10"]}[command]
    result = mounted("ro", run_dir, tmp_path, *args)
    assert result.returncode == 1
    line = error_line(result)
    assert "Read-only file system" in line and str(run_dir) in line, line
    assert (tmp_path / "files").read_text().split() == listing


@pytest.mark.parametrize("command", ["eval", "export"])
def test_a_full_disk_during_eval_or_export_leaves_nothing_half_written(base_run, tmp_path, command):
    run_dir = copy_run(base_run, tmp_path)
    listing = files_in(run_dir)
    args = ["eval", run_dir] if command == "eval" else ["export", run_dir, "--format", "keras", "--count", "4"]
    result = mounted("full", run_dir, tmp_path, *args)
    assert result.returncode == 1
    target = run_dir / ("eval.json" if command == "eval" else "export/model.keras")
    assert error_line(result).startswith(f"error: {target}: cannot write the ")
    assert "(No space left on device); nothing was written" in error_line(result)
    assert (tmp_path / "files").read_text().split() == listing  # no 0-byte model.keras, no temp file


def test_class_names_json_that_does_not_fit_the_model_is_one_line(base_run, tmp_path, images):
    run_dir = copy_run(base_run, tmp_path)
    names = run_dir / "class_names.json"
    payload = json.loads(names.read_text())
    names.write_text(json.dumps({**payload, "class_names": payload["class_names"][:9]}))
    nine = gdfr("predict", run_dir, images["good"][0], "--top-k", "10")
    assert nine.returncode == 2
    assert error_line(nine) == f"error: {names}: 9 class names, but the model has 10 outputs"


# ----------------------------------------------------------------------------- in process: readers, messages


def test_one_bad_byte_or_a_wrongly_typed_field_skips_a_line_or_a_run_not_the_report(base_run, tmp_path):
    from keras_gdfr.report.runs import find_runs
    from keras_gdfr.training.events import read_events

    runs = tmp_path / "runs"
    good, byte, typed = (copy_run(base_run, runs / name) for name in ("good", "byte", "typed"))  # <name>/run
    with open(byte / "events.jsonl", "ab") as file:
        file.write(b'{"event": "progress", "note": "\xff"}\n')
    kinds = [e["event"] for e in read_events(base_run)]
    assert [e["event"] for e in read_events(byte)] == kinds  # the bad line alone is skipped
    lines = (typed / "events.jsonl").read_text().splitlines()
    end = json.loads(lines[-1])
    lines[-1] = json.dumps({**end, "epoch": "two"})
    (typed / "events.jsonl").write_text("\n".join(lines) + "\n")
    found, skipped = find_runs([good, byte, typed])
    assert [run.path for run in found] == [good, byte]
    assert found[1].completed and found[1].test_accuracy == found[0].test_accuracy
    assert skipped == [f"{typed}: events.jsonl: a run_end event's epoch is 'two', not a number "
                       "(fix or remove it to report this run)"]


def test_model_files_and_folders_that_are_no_run_say_what_is_wrong(base_run, tmp_path):
    from keras_gdfr.saving import ModelFileError, load_run_model

    cut = tmp_path / "cut.keras"
    cut.write_bytes((base_run / "model.keras").read_bytes()[:5000])
    with pytest.raises(ModelFileError, match=rf"^{cut}: not a readable .keras file \(truncated, or not a Keras model: "
                                             r"5000 bytes that are no zip archive\)$"):
        load_run_model(cut)
    empty = tmp_path / "folder"
    empty.mkdir()
    with pytest.raises(ModelFileError, match=rf"^{empty}: not a run directory \(no model.keras, recipe.json or events.jsonl\)$"):
        load_run_model(empty)
    run_dir = copy_run(base_run, tmp_path)
    (run_dir / "class_names.json").write_text('{"class_names": ["airpl')
    with pytest.raises(ModelFileError, match=rf"^{run_dir / 'class_names.json'}: unreadable \(JSONDecodeError: "):
        load_run_model(run_dir)


def test_empty_class_folders_and_data_two_levels_off_are_named(tmp_path):
    from keras_gdfr.data.errors import DataError
    from keras_gdfr.data.sources import check_data_dir, load_dataset

    data = fx.imagefolder(tmp_path / "data", per_class=(1, 1), splits=("train", "test"))
    for image in (data / "test" / "cat").iterdir():
        image.unlink()
    with pytest.raises(DataError, match=rf"found 9 class folders with images \(.*\); without images: {data / 'test' / 'cat'}$"):
        load_dataset("cifar10", "test", data_dir=data)
    fx.gtsrb_tree(tmp_path / "g", per_class=1)
    images = tmp_path / "g" / "GTSRB" / "Final_Training" / "Images"
    with pytest.raises(DataError, match=rf"pass the folder that holds it: {tmp_path / 'g' / 'GTSRB'}$"):
        check_data_dir("gtsrb", images)
    high = tmp_path / "high"
    fx.imagefolder(high / "sets" / "cifar", per_class=(1, 1), splits=("train", "test"))
    (high / "notes.txt").write_text("")
    with pytest.raises(DataError, match=rf"pass the folder that holds it: {high / 'sets'}$"):  # (its one folder holds train/)
        check_data_dir("cifar10", high)
    check_data_dir("cifar10", high / "sets")


def test_the_lock_survives_a_deleted_lock_file(tmp_path):
    from keras_gdfr.training.runlock import RunLock, RunLocked, is_locked

    with RunLock(tmp_path, "torch"):
        (tmp_path / "run.lock").unlink()  # a user "unlocking" a live run
        assert is_locked(tmp_path)
        with pytest.raises(RunLocked, match=r"in use by another process \(its run.lock is gone\)"):
            RunLock(tmp_path, "torch").acquire()
    with RunLock(tmp_path, "jax"):
        pass
    assert not is_locked(tmp_path)


def test_the_atomic_writer_leaves_the_old_file_or_the_new_one(tmp_path):
    from keras_gdfr.atomic import atomic_write

    target = tmp_path / "eval.json"
    atomic_write(target, '{"accuracy": 0.5}')
    atomic_write(target, lambda tmp: tmp.write_bytes(b"new"))
    assert target.read_bytes() == b"new"

    def torn(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, torn)
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["eval.json"]
    folder = tmp_path / "saved_model"
    for content in (b"1", b"2"):  # a folder replacing a folder (a SavedModel)
        atomic_write(folder, lambda tmp, content=content: (tmp.mkdir(), (tmp / "x").write_bytes(content)))
    assert (folder / "x").read_bytes() == b"2" and sorted(p.name for p in tmp_path.iterdir()) == ["eval.json", "saved_model"]
