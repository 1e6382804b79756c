"""TensorFlow as an optional helper: imported only for tf.data and tfds, quiet, off the GPUs.

On the torch and jax backends TensorFlow only shuffles images, yet once imported
with a GPU visible it claims most of that GPU's memory, and its C++ runtime
prints a screenful of notices. `import_tensorflow` therefore (1) sets
``TF_CPP_MIN_LOG_LEVEL=3`` unless the user chose a level, (2) keeps the C++
notices of the import itself (written to fd 2 before TensorFlow reads that
setting) out of the terminal, and (3) on a backend other than tensorflow hides
every GPU from TensorFlow before its first op. Every TensorFlow import of the
package goes through it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

INSTALL_HINT = "pip install tensorflow-cpu (or the `tensorflow` extra)"


class TensorFlowMissing(ImportError):
    """TensorFlow is needed for this (tf.data, tfds) and not installed; the message says how to get it."""


def available() -> bool:
    """True when TensorFlow can be imported (without importing it)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"] is not None
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def _quiet_stderr():
    """Send fd 2 to a temp file while TensorFlow loads; replay only lines that are not C++ notices."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode("utf-8", "replace").splitlines():
                if not _is_notice(line):
                    print(line, file=sys.stderr)


def _is_notice(line: str) -> bool:
    """absl/C++ log lines ("I0000 ...", "W0000 ...", "E0000 ..."), and TensorFlow's CPU-feature notice."""
    text = line.strip()
    if not text:
        return True
    if len(text) > 5 and text[0] in "IWE" and text[1:5].isdigit():
        return True
    return text.startswith(("WARNING: All log messages before absl", "To enable the following instructions",
                            "This TensorFlow binary is optimized"))


def import_tensorflow(purpose: str = "tf.data"):
    """The `tensorflow` module, imported quietly and (off the tensorflow backend) without GPUs.

    Raises `TensorFlowMissing` naming ``purpose`` when it is not installed.
    """
    first = "tensorflow" not in sys.modules
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _quiet_stderr() if first else contextlib.nullcontext():
            import tensorflow as tf

            if _backend() != "tensorflow":
                hide_gpus(tf)  # looking for GPUs logs (cuInit) too
    except ImportError as err:
        raise TensorFlowMissing(f"{purpose} needs TensorFlow, which is not installed ({INSTALL_HINT})") from err
    return tf


def tame_if_installed() -> None:
    """Import an installed TensorFlow now, quietly and off the GPUs (torch/jax backends).

    Keras imports TensorFlow by itself wherever it is installed
    (`keras.utils.set_random_seed` seeds it): call this first, so that import is
    this module's. Without TensorFlow, or on the tensorflow backend, it does nothing.
    """
    if "tensorflow" in sys.modules or _backend() == "tensorflow" or not available():
        return
    try:
        import_tensorflow()
    except TensorFlowMissing:  # installed but broken: Keras will find it unavailable too
        pass


def _backend() -> str:
    keras = sys.modules.get("keras")
    if keras is not None:
        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def hide_gpus(tf) -> None:
    """Make TensorFlow see no GPU (it must not have run an op yet; after that this is a no-op)."""
    try:
        if tf.config.list_physical_devices("GPU"):
            tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised: too late, TensorFlow keeps what it has
        pass
