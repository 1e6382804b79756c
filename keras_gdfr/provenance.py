"""Which code made a result: the git commit of this keras-gdfr source and the library versions.

One place for it: `gdfr bench` prints it, `gdfr train` records it in `run_start`, and
`gdfr preset save` copies the run's into the preset's metadata.
"""

from __future__ import annotations

import os
import subprocess

DIRTY_PREFIX = "uncommitted changes on top of "


def git_commit(short: bool = False) -> str | None:
    """This source's `git rev-parse HEAD`, prefixed with "uncommitted changes on top of " when the tree differs.

    ``GDFR_COMMIT`` overrides it: a copied tree without .git (the GPU machine) is told its
    version by the command that starts it. None outside a git checkout (an installed wheel).
    """
    if os.environ.get("GDFR_COMMIT"):
        return os.environ["GDFR_COMMIT"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = lambda *args: subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10)  # noqa: E731
    try:
        head = git("rev-parse", *(["--short"] if short else []), "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = git("status", "--porcelain").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{DIRTY_PREFIX}{head.stdout.strip()}" if dirty else head.stdout.strip()


def versions() -> dict:
    """keras-gdfr, Keras and the active backend's library versions."""
    import keras

    import keras_gdfr

    found = {"keras_gdfr": keras_gdfr.__version__, "keras": keras.__version__}
    backend = keras.backend.backend()
    module = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}.get(backend)
    if module:
        found[module] = __import__(module).__version__
    return found
