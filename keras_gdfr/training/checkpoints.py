"""Atomic checkpoints: model weights, optimizer variables and loop state.

Layout under `<run_dir>/checkpoints/`:
    epoch-0007/          model.weights.h5, optimizer.npz, state.json
    last.json            {"dir": "epoch-0007"}: which directory is current
    best.weights.h5      weights of the best validation accuracy so far

A checkpoint is written into a temporary directory, fsynced and renamed; only
then does `last.json` (replaced atomically) point at it, and older epoch
directories are removed. A crash at any moment leaves the previous complete
checkpoint as the current one.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

CHECKPOINT_DIR = "checkpoints"
POINTER = "last.json"
BEST = "best.weights.h5"


class CheckpointError(Exception):
    """A checkpoint that cannot be read; the message names the path."""


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old or the new file, never half."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)
    _fsync_dir(path.parent)


def _save_optimizer(optimizer, path: pathlib.Path) -> None:
    arrays = {f"v{i:05d}": np.asarray(v.numpy() if hasattr(v, "numpy") else v) for i, v in enumerate(optimizer.variables)}
    np.savez(path, **arrays)


def _load_optimizer(optimizer, model, path: pathlib.Path) -> None:
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    with np.load(path) as saved:
        arrays = [saved[key] for key in sorted(saved.files)]
    variables = optimizer.variables
    if len(arrays) != len(variables):
        raise CheckpointError(
            f"{path}: holds {len(arrays)} optimizer variables, the model's optimizer has {len(variables)}"
        )
    for variable, value in zip(variables, arrays):
        if tuple(variable.shape) != value.shape:
            raise CheckpointError(f"{path}: optimizer variable {variable.path} has shape {value.shape}, expected {tuple(variable.shape)}")
        variable.assign(value)


def save_checkpoint(run_dir, model, optimizer, state: dict) -> pathlib.Path:
    """Write the epoch's checkpoint atomically and make it the current one."""
    root = pathlib.Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state['epoch']:04d}"
    tmp = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    model.save_weights(tmp / "model.weights.h5")
    _save_optimizer(optimizer, tmp / "optimizer.npz")
    (tmp / "state.json").write_text(json.dumps(state))
    for file in tmp.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    atomic_write_text(root / POINTER, json.dumps({"dir": name}))
    for old in root.glob("epoch-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(run_dir, model) -> pathlib.Path:
    root = pathlib.Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / ".best.tmp.weights.h5"
    model.save_weights(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, root / BEST)
    return root / BEST


def latest_checkpoint(run_dir) -> pathlib.Path | None:
    """The current checkpoint directory of a run, or None when it has none."""
    pointer = pathlib.Path(run_dir) / CHECKPOINT_DIR / POINTER
    if not pointer.exists():
        return None
    try:
        name = json.loads(pointer.read_text())["dir"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{pointer}: unreadable checkpoint pointer ({error})") from error
    path = pointer.parent / name
    if not (path / "state.json").exists():
        raise CheckpointError(f"{path}: checkpoint directory is missing or incomplete")
    return path


def load_checkpoint(path: pathlib.Path, model, optimizer) -> dict:
    """Restore weights and optimizer variables; return the saved loop state."""
    try:
        state = json.loads((path / "state.json").read_text())
        model.load_weights(path / "model.weights.h5")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot restore the checkpoint: {error}") from error
    _load_optimizer(optimizer, model, path / "optimizer.npz")
    return state
