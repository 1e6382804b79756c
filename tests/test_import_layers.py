"""The package's import graph: no circles, and no module imports a layer above its own.

Read from the source with `ast` (nothing is imported), so every import counts,
also the ones inside functions: a lazy import still ties two modules together.
`from pkg import name` counts as importing `pkg.name` when that is a module, else
`pkg`; the parent packages Python runs on the way are not counted.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_gdfr", "launcher")

# Lowest first; a module may import its own layer and the ones below. The longest
# matching prefix decides. The facts tables are plain Python every layer reads.
LAYERS = [
    ("facts", ("keras_gdfr", "keras_gdfr.variants", "keras_gdfr.data.specs", "keras_gdfr.atomic", "keras_gdfr.provenance")),
    ("layers", ("keras_gdfr.layers",)),
    ("models", ("keras_gdfr.models", "keras_gdfr.counting", "keras_gdfr.presets")),
    ("data", ("keras_gdfr.data",)),
    # The classifier compiles with the paper's optimizer (keras_gdfr.training.optimizer) by default.
    ("training", ("keras_gdfr.training", "keras_gdfr.saving", "keras_gdfr.evaluation", "keras_gdfr.models.classifier")),
    ("apps", ("keras_gdfr.cli", "keras_gdfr.bench", "keras_gdfr.bench_instruments", "keras_gdfr.bench_native",
              "keras_gdfr.predict", "keras_gdfr.export", "keras_gdfr.report",
              "keras_gdfr.presets.from_run", "keras_gdfr.presets.commands", "launcher")),
]


def modules(root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
    found = {}
    for package in PACKAGES:
        for file in (root / package).rglob("*.py"):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = file
    return found


def import_graph(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its body)."""
    known = modules(root)
    graph = {}
    for name, file in known.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in known else base)
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def layer_of(module: str) -> int:
    best, rank = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            below = module.startswith(prefix + ".") and prefix != "keras_gdfr"  # that one: its __init__ only
            if (module == prefix or below) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank is not None, f"{module} is in no layer of tests/test_import_layers.py: add it"
    return rank


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_no_import_circles():
    found = circles(import_graph())
    assert not found, f"import circles: {found}"


def test_no_module_imports_a_layer_above_its_own():
    graph = import_graph()
    upward = sorted(
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in graph.items() for target in targets
        if layer_of(target) > layer_of(module)
    )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_graph_sees_lazy_imports_and_circles():
    """The checker itself: a lazy import inside a function is an edge, a 2-module loop is a circle."""
    graph = import_graph()
    assert "keras_gdfr.models" in graph["keras_gdfr.counting"]  # imported inside count_variant
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    assert layer_of("keras_gdfr.data.gtsrb") == layer_of("keras_gdfr.data") > layer_of("keras_gdfr.data.specs")
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("keras_gdfr.newmodule")  # a new top-level module must be placed in LAYERS
