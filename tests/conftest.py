"""Shared test fixtures.

The real data of `../shared/data` is located through one setting,
`GDFR_SHARED_DATA` (default: `shared/data` beside the repository). Where it is
missing, tests that need it are skipped with a message that says what to set;
under CI (`CI=true`) they fail instead, so a green CI always includes them.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import sys
import tempfile
import time

import pytest

# The TUI shows local times (run labels, started-at): the snapshot baselines were made in UTC.
os.environ["TZ"] = "UTC"
time.tzset()

# One intra-op thread in this process and every subprocess it starts (environ is inherited):
# the suite's models are tiny, so a second thread buys little, while on a busy machine or
# beside a second pytest-xdist worker the threads of each process fight over the cores
# (a tiny train step took 0.5 s with the default threads under load, 0.13 s with one).
# A value set by the caller wins.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",  # torch (and TensorFlow's oneDNN)
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",  # jax on CPU
}
for _name, _value in SINGLE_THREAD_ENV.items():
    os.environ.setdefault(_name, _value)
if "torch" in sys.modules:  # imported by a plugin before this file: the variable came too late
    sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def _share_jax_compilation_cache() -> None:
    """One persistent XLA compilation cache for every jax subprocess of this test session.

    A jax process compiles each op it meets (about 500 small programs to build and call
    the `tiny` model: 20-40 s); with the cache a later process that meets the same ops
    and shapes loads them instead (the same script: 3-5 s). The folder is made once per session (by the xdist controller, whose workers
    inherit it) and removed at exit; set JAX_COMPILATION_CACHE_DIR to keep one yourself.
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    path = tempfile.mkdtemp(prefix="gdfr-tests-jax-cache-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # cache small programs too
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # Eager jax compiles each op of a tiny model once and runs it a few times: XLA's
    # optimisation passes cost more than they save (the `tiny` build took 13 s instead of 43 s).
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")


_share_jax_compilation_cache()

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("GDFR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)


def _require_shared(name: str) -> pathlib.Path:
    path = SHARED_DATA / name
    if path.exists():
        return path
    message = (
        f"real data {path} is missing: set GDFR_SHARED_DATA to the folder that holds "
        f"{name} (the project's shared/data)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def cifar10_zip() -> pathlib.Path:
    """The real CIFAR-10 JPEG ImageFolder zip (`train/<class>/*.jpg`, `test/...`)."""
    return _require_shared("cifar10-jpeg.zip")


@pytest.fixture(scope="session")
def imagenette_zip() -> pathlib.Path:
    """The small real Imagenette ImageFolder zip (`train/`, `val/`, 224 px)."""
    return _require_shared("imagenette-mini.zip")
