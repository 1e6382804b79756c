"""What the package needs: the Keras range it was tested on, and what each entry point imports.

The import checks run in a fresh interpreter, so that nothing another test imported counts.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEAVY = ("keras", "tensorflow", "torch", "jax")

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def keras_requirement() -> Requirement:
    """The `keras` line of pyproject.toml's dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return next(Requirement(line) for line in project["dependencies"] if Requirement(line).name == "keras")


def keras_range_message(installed: str, requirement: Requirement) -> str | None:
    """None when `installed` is in the tested range; else the line that says what to do."""
    if requirement.specifier.contains(installed, prereleases=True):
        return None
    return (
        f"keras {installed} is outside {requirement} (pyproject.toml), the Keras versions the tests have "
        "run on: keras_gdfr/training/torch_compile.py and keras_gdfr/data/augment.py use keras.src "
        "internals; check them and run the suite on this Keras, then move the bound"
    )


def test_keras_has_an_upper_bound():
    requirement = keras_requirement()
    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in requirement.specifier), str(requirement)
    assert keras_range_message("3.99.0", requirement).startswith("keras 3.99.0 is outside keras")


def test_installed_keras_is_a_version_the_tests_have_seen():
    message = keras_range_message(importlib.metadata.version("keras"), keras_requirement())
    assert message is None, message


def imported_after(code: str, names=HEAVY) -> list[str]:
    """Which of `names` are in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([n for n in {list(names)!r} if n in sys.modules]))\n"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_predict_files_imports_without_click():
    """The README's Python API: `from keras_gdfr.predict import predict_files` needs no CLI stack."""
    assert imported_after("from keras_gdfr.predict import predict_files", ("click", *HEAVY)) == []


def test_the_launcher_imports_no_keras():
    """gdfr-tui's process stays Keras-free (fast start, backend free): every launcher module,
    and what the launch screen runs (variants, recipe facts, the form's checks, the app)."""
    code = (
        "import importlib, pkgutil, launcher\n"
        "for module in pkgutil.walk_packages(launcher.__path__, 'launcher.'):\n"
        "    if module.name != 'launcher.__main__': importlib.import_module(module.name)\n"
        "from launcher import recipes\n"
        "from launcher.app import make_app\n"
        "from launcher.widgets.variant_list import list_variants\n"
        "assert 'tiny' in list_variants()\n"
        "for entry in recipes.list_recipe_entries('recipes'): recipes.recipe_facts(entry.path)\n"
        "assert recipes.validate('recipes/cifar10.toml', 'tiny', recipes.Overrides(epochs=0))\n"
        "make_app('recipes', 'runs')\n"
    )
    assert imported_after(code) == []


@pytest.mark.parametrize("module", ["keras_gdfr", "keras_gdfr.cli", "keras_gdfr.training.recipe"])
def test_the_cli_and_the_recipe_checks_import_no_keras(module):
    """`gdfr --help` and the recipe checks load no backend; Keras loads in the command bodies."""
    assert imported_after(f"import {module}") == []
