"""Atomic file writes: the one helper every writer of keras-gdfr uses (docs/run-directory.md).

`atomic_write(path, data_or_writer)` writes to a dot-name beside `path`
(`.eval.json.tmp-1a2b3c4d`), fsyncs it, renames it over `path` and fsyncs the
folder: a reader, or a kill at any moment, sees the old file or the new one,
never half of one. On any failure (a full disk, a read-only folder, an exception
in the writer) the temp file is removed and `path` is left as it was.

Example:

    atomic_write("runs/r/eval.json", json.dumps(report))       # str or bytes
    atomic_write("runs/r/model.keras", model.save, suffix=".keras")  # a writer of a temp path

No keras import: the report and the TUI use this too.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import pathlib
import shutil
import sys
import uuid
from collections.abc import Callable

TEMP_PREFIX = "."  # every temp file or folder of a writer is a dot-name beside its target


def temp_name(path: pathlib.Path, suffix: str = "") -> pathlib.Path:
    """A fresh dot-name beside `path` (`suffix` keeps an extension a writer insists on)."""
    return path.parent / f"{TEMP_PREFIX}{path.name}.tmp-{uuid.uuid4().hex[:8]}{suffix}"


def remove(path: pathlib.Path) -> None:
    """Remove a file or a folder tree, quietly."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: pathlib.Path) -> None:
    """fsync a file, or every file under a folder (a SavedModel is a folder)."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


@contextlib.contextmanager
def quiet_on_failure():
    """Hold back what a writer prints to stderr; show it if the write succeeds, drop it if it fails.

    On a full disk h5py prints an "Exception ignored" traceback for every object it
    cannot close (dozens); the caller reports the failure in one line instead.
    """
    held, hook, stderr = io.StringIO(), sys.unraisablehook, sys.stderr
    sys.stderr = held
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    except BaseException as error:
        while error is not None:  # h5py objects in the traceback's frames: free them now, still quiet
            error.__traceback__ = None
            error = error.__context__
        gc.collect()
        raise
    else:
        stderr.write(held.getvalue())
    finally:
        sys.stderr, sys.unraisablehook = stderr, hook


def atomic_write(path, data_or_writer: str | bytes | Callable[[pathlib.Path], object], suffix: str = "") -> pathlib.Path:
    """Replace `path` with `data_or_writer` atomically and return `path`.

    Args:
        path: the target file (or folder, for a writer that makes one).
        data_or_writer: text (written as UTF-8), bytes, or a function called with the
            temp path that writes the file there (`model.save`).
        suffix: an extension the temp name must end with (Keras insists on `.keras`).
    """
    path = pathlib.Path(path)
    tmp = temp_name(path, suffix)
    if isinstance(data_or_writer, str):
        data_or_writer = data_or_writer.encode("utf-8")
    try:
        with quiet_on_failure():
            if isinstance(data_or_writer, bytes):
                tmp.write_bytes(data_or_writer)
            else:
                data_or_writer(tmp)
        fsync_tree(tmp)
        _install(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    fsync_dir(path.parent)
    return path


def _install(tmp: pathlib.Path, path: pathlib.Path) -> None:
    """Rename `tmp` onto `path`; a folder replacing a folder moves the old one aside first, removed after."""
    aside = None
    if tmp.is_dir() and path.is_dir():
        aside = temp_name(path)
        os.replace(path, aside)
    os.replace(tmp, path)
    if aside is not None:
        remove(aside)


def check_writable(folder) -> None:
    """Raise OSError (errno, the folder named) unless a file can be created in `folder` now.

    Called before a long computation whose result goes there, so that a read-only
    or missing folder fails in a second, not after the work.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        import errno

        raise FileNotFoundError(errno.ENOENT, "no such folder", str(folder))
    probe = temp_name(folder / "write-check")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        error.filename = str(folder)
        raise
    os.close(fd)
    probe.unlink(missing_ok=True)
