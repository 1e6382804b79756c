"""Atomic checkpoints: model weights, optimizer variables and loop state.

Layout under `<run_dir>/checkpoints/`:
    epoch-0007/          model.weights.h5, optimizer.npz, state.json
    last.json            {"dir": "epoch-0007"}: which directory is current
    best.weights.h5      weights of the best validation accuracy so far

A checkpoint is written into a temporary directory, fsynced and renamed; only
then does `last.json` (replaced atomically) point at it, and older epoch
directories are removed (never a newer one). A crash at any moment leaves the
previous complete checkpoint as the current one. Every other file (best
weights, model.keras, JSON) is written to a dot-prefixed temp name and renamed;
a failed write removes its temp file, and `clean_temp` removes those a kill left.
When `last.json` is missing or torn, the newest complete `epoch-NNNN/` is used.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import tempfile

import numpy as np

from keras_gdfr.atomic import TEMP_PREFIX, atomic_write, fsync_dir, fsync_tree, quiet_on_failure, remove, temp_name

CHECKPOINT_DIR = "checkpoints"
POINTER = "last.json"
BEST = "best.weights.h5"
CHECKPOINT_FILES = ("model.weights.h5", "optimizer.npz", "state.json")
_EPOCH_DIR = re.compile(r"epoch-(\d{4,})")


class CheckpointError(Exception):
    """A checkpoint that cannot be read; the message names the path."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_file(path: pathlib.Path, write, suffix: str = "") -> pathlib.Path:
    """`write(temp_path)` then rename onto `path` (keras_gdfr.atomic.atomic_write)."""
    return atomic_write(path, write, suffix)


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    """Replace `path` with `text` atomically (keras_gdfr.atomic.atomic_write)."""
    atomic_write(path, text)


def save_model(model, path: pathlib.Path) -> pathlib.Path:
    """`model.save(path)` atomically: a kill or a full disk during the save leaves no torn .keras file."""
    return atomic_write_file(pathlib.Path(path), model.save, suffix=".keras")


def _save_optimizer(optimizer, path: pathlib.Path) -> None:
    arrays = {f"v{i:05d}": np.asarray(v.numpy() if hasattr(v, "numpy") else v) for i, v in enumerate(optimizer.variables)}
    np.savez(path, **arrays)


def _load_optimizer(optimizer, model, path: pathlib.Path) -> None:
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    try:
        with np.load(path) as saved:
            arrays = [saved[key] for key in sorted(saved.files)]
    except Exception as error:  # a torn .npz: BadZipFile, EOFError, ValueError, OSError
        raise CheckpointError(f"{path}: unreadable optimizer state ({_short(error)})") from None
    variables = optimizer.variables
    if len(arrays) != len(variables):
        raise CheckpointError(
            f"{path}: holds {len(arrays)} optimizer variables, the model's optimizer has {len(variables)}"
        )
    for variable, value in zip(variables, arrays):
        if tuple(variable.shape) != value.shape:
            raise CheckpointError(f"{path}: optimizer variable {variable.path} has shape {value.shape}, expected {tuple(variable.shape)}")
        variable.assign(value)


def epoch_of(path: pathlib.Path) -> int | None:
    """The epoch number of an `epoch-NNNN` directory name, else None."""
    match = _EPOCH_DIR.fullmatch(path.name)
    return int(match.group(1)) if match else None


def _write_checkpoint_dir(tmp: pathlib.Path, model, optimizer, state: dict) -> None:
    model.save_weights(tmp / "model.weights.h5")
    _save_optimizer(optimizer, tmp / "optimizer.npz")
    (tmp / "state.json").write_text(json.dumps(state))
    for file in tmp.iterdir():
        fsync_tree(file)
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700


def _install_dir(tmp: pathlib.Path, final: pathlib.Path) -> None:
    """Rename the complete `tmp` onto `final`; an old `final` is moved aside first, removed after."""
    aside = None
    if final.exists():
        aside = temp_name(final)
        os.replace(final, aside)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def save_checkpoint(run_dir, model, optimizer, state: dict) -> pathlib.Path:
    """Write the epoch's checkpoint atomically and make it the current one.

    Only after the new directory and `last.json` are on disk are older epochs
    removed; a newer epoch directory (not written by this run) is never touched.
    """
    root = pathlib.Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    epoch = int(state["epoch"])
    name = f"epoch-{epoch:04d}"
    tmp = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=f"{TEMP_PREFIX}{name}."))
    try:
        with quiet_on_failure():
            _write_checkpoint_dir(tmp, model, optimizer, state)
        _install_dir(tmp, root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / POINTER, json.dumps({"dir": name}))
    for old in root.glob("epoch-*"):
        number = epoch_of(old)
        if number is not None and number < epoch:
            shutil.rmtree(old, ignore_errors=True)
    return root / name


def save_best(run_dir, model) -> pathlib.Path:
    root = pathlib.Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    return atomic_write_file(root / BEST, model.save_weights, suffix=".weights.h5")


def clean_temp(run_dir) -> list[pathlib.Path]:
    """Remove the temp files and folders that killed writers left (call with the run's lock held)."""
    run_dir = pathlib.Path(run_dir)
    left = [p for p in (*run_dir.glob(f"{TEMP_PREFIX}*.tmp-*"), *(run_dir / CHECKPOINT_DIR).glob(f"{TEMP_PREFIX}*"))]
    for path in left:
        remove(path)
    return left


def why_incomplete(path: pathlib.Path) -> str | None:
    """What is wrong with an epoch directory (naming the file), or None when it is complete."""
    for name in CHECKPOINT_FILES:
        if not (path / name).is_file():
            return f"{path / name}: missing"
    try:
        epoch = int(json.loads((path / "state.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{path / 'state.json'}: unreadable ({_short(error)})"
    if epoch != epoch_of(path):
        return f"{path / 'state.json'}: says epoch {epoch}, not {epoch_of(path)}"
    return None


def is_complete(path: pathlib.Path) -> bool:
    """Whether an epoch directory holds all its files and a state.json of its own epoch."""
    return why_incomplete(path) is None


def complete_checkpoints(run_dir) -> list[pathlib.Path]:
    """The complete epoch directories of a run, oldest first."""
    root = pathlib.Path(run_dir) / CHECKPOINT_DIR
    found = [p for p in root.glob("epoch-*") if p.is_dir() and epoch_of(p) is not None and is_complete(p)]
    return sorted(found, key=epoch_of)


def find_checkpoint(run_dir) -> tuple[pathlib.Path | None, str | None]:
    """(checkpoint directory, note) to resume `run_dir` from.

    The directory `last.json` names when it is complete; else the newest complete
    `epoch-NNNN/` with a note saying why; (None, None) when the run saved nothing.
    Raises CheckpointError when checkpoints were saved but none is complete: starting
    over from epoch 1 would overwrite them.
    """
    root = pathlib.Path(run_dir) / CHECKPOINT_DIR
    pointer = root / POINTER
    if not pointer.exists():
        problem = f"{pointer} is missing"
    else:
        try:
            path = root / json.loads(pointer.read_text())["dir"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            problem = f"{pointer} is unreadable ({error})"
        else:
            if not path.is_dir():
                problem = f"{path} (named by {POINTER}) is missing"
            elif (problem := why_incomplete(path)) is None:
                return path, None
    found = complete_checkpoints(run_dir)
    if found:
        return found[-1], f"{problem}; resuming from the newest complete checkpoint, {found[-1].name}"
    # Best weights alone do not count: a kill between save_best and the epoch's checkpoint leaves
    # them, and redoing that epoch (deterministic) writes them again.
    if pointer.exists() or any(root.glob("epoch-*")):
        raise CheckpointError(
            f"{problem} and {root} holds no complete epoch-NNNN checkpoint; refusing to start the run "
            "over from epoch 1 (it would overwrite what is saved)"
        )
    return None, None


def latest_checkpoint(run_dir) -> pathlib.Path | None:
    """The checkpoint directory to resume from, or None when the run has none (see find_checkpoint)."""
    return find_checkpoint(run_dir)[0]


def _short(error: Exception, limit: int = 240) -> str:
    """The first line of an error (Keras's load errors run to a hundred lines)."""
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


def load_checkpoint(path: pathlib.Path, model, optimizer) -> dict:
    """Restore weights and optimizer variables; return the saved loop state. Errors name the file."""
    state_file, weights_file = path / "state.json", path / "model.weights.h5"
    try:
        state = json.loads(state_file.read_text())
        int(state["epoch"]), float(state["best_val_accuracy"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{state_file}: unreadable checkpoint state ({_short(error)})") from None
    if not optimizer.built:  # else Keras warns "Skipping variable loading for optimizer" on every resume
        optimizer.build(model.trainable_variables)
    try:
        model.load_weights(weights_file)
    except Exception as error:  # h5py OSError on a torn file, ValueError from Keras on a different model
        raise CheckpointError(
            f"{weights_file}: cannot load into this model; a changed architecture, or a torn file? ({_short(error)})"
        ) from None
    _load_optimizer(optimizer, model, path / "optimizer.npz")
    return state
