"""Importing `keras_gdfr` modules into the launcher's process only when that stays Keras-free.

The launcher must not import Keras (slow, and bound to one backend). Whether
`import keras_gdfr.x` would is decided without running anything: the module
files of the package are parsed and their import statements that run at import
time (module and class level, not inside functions) are followed through the
package, parent `__init__.py` files included. A module that is Keras-free is
imported normally; a leaf module (one that imports nothing of `keras_gdfr`) in
a package whose `__init__` is not, is loaded on its own from its file.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import pathlib
import sys
from types import ModuleType

PACKAGE = "keras_gdfr"
HEAVY = frozenset({"keras", "tensorflow", "torch", "jax", "jaxlib", "tensorflow_datasets", "tf_keras"})
"""Top-level names whose import the launcher's process must never run."""


@functools.lru_cache(maxsize=None)
def package_root() -> pathlib.Path | None:
    """The folder of the `keras_gdfr` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def module_file(name: str) -> pathlib.Path | None:
    """The source file of a `keras_gdfr` module name, or None."""
    root = package_root()
    if root is None or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
        return None
    parts = name.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def import_time_imports(name: str) -> frozenset[str]:
    """Absolute module names a module imports when it is imported (not inside functions)."""
    path = module_file(name)
    if path is None:
        return frozenset()
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return frozenset({"<unparsable>"})
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base:
                found.add(base)
                # `from pkg import sub` may import the submodule `pkg.sub`.
                for alias in node.names:
                    if alias.name != "*" and module_file(f"{base}.{alias.name}") is not None:
                        found.add(f"{base}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return frozenset(found)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str | None, level: int, package: str) -> str | None:
    if level == 0:
        return module
    parts = package.split(".")
    if level - 1 > len(parts):
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{module}" if module else base


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=None)
def heavy_imports(name: str, with_parents: bool = True) -> frozenset[str]:
    """The heavy top-level packages that `import name` would import (empty: Keras-free)."""
    seen: set[str] = set()
    heavy: set[str] = set()
    todo = [name, *(_parents(name) if with_parents else [])]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imported in import_time_imports(current):
            top = imported.split(".")[0]
            if top in HEAVY or imported == "<unparsable>":
                heavy.add(top)
            elif top == PACKAGE:
                todo.append(imported)
                if with_parents:
                    todo.extend(_parents(imported))
    return frozenset(heavy)


def is_keras_free(name: str) -> bool:
    """Whether `import name` (a `keras_gdfr` module) leaves Keras and its backends unimported."""
    return module_file(name) is not None and not heavy_imports(name)


def load(name: str) -> ModuleType | None:
    """A `keras_gdfr` module, imported only in a way that keeps this process Keras-free.

    Returns:
        The module; or, for a leaf module behind a heavy package `__init__`, a
        copy loaded from its file on its own; or None when neither is possible.
    """
    if name in sys.modules:
        return sys.modules[name]
    if is_keras_free(name):
        try:
            return importlib.import_module(name)
        except ImportError:
            return None
    path = module_file(name)
    if path is None or heavy_imports(name, with_parents=False):
        return None
    if any(i.split(".")[0] == PACKAGE for i in import_time_imports(name)):
        return None
    private = f"launcher._standalone.{name}"
    if private in sys.modules:
        return sys.modules[private]
    spec = importlib.util.spec_from_file_location(private, path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module
    try:
        spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 - a module that cannot stand alone
        del sys.modules[private]
        return None
    return module
