"""Shared test fixtures.

The real data of `../shared/data` is located through one setting,
`GDFR_SHARED_DATA` (default: `shared/data` beside the repository). Where it is
missing, tests that need it are skipped with a message that says what to set;
under CI (`CI=true`) they fail instead, so a green CI always includes them.
"""

from __future__ import annotations

import os
import pathlib
import time

import pytest

# The TUI shows local times (run labels, started-at): the snapshot baselines were made in UTC.
os.environ["TZ"] = "UTC"
time.tzset()

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
