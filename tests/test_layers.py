"""The package's layers: no import circle, no import from a lower layer to a higher one, TensorFlow in train/ only.

Every module of ``ssc_edge`` is parsed with :mod:`ast` (nothing is imported), and every import statement counts,
at module level or inside a function: a function-level import is still a dependency, only a later one. The
layers, lowest first (a module may import its own layer and the layers below it):

0. ``errors``, ``bands``, ``progress``, ``tiling``, the package root (its version)
1. ``scene``, ``contract``, ``metrics``, ``nodata``, ``sampling``
2. ``io``
3. ``wald``, ``registration``, ``quality``, ``bandset``, ``demo``, ``evaluation``
4. ``runtime``
5. ``train``
6. ``batch``
7. ``cli``
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ssc_edge"

#: Top-level module or subpackage -> layer, lowest first.
LAYERS = {
    **dict.fromkeys(("errors", "bands", "progress", "tiling", ""), 0),
    **dict.fromkeys(("scene", "contract", "metrics", "nodata", "sampling"), 1),
    "io": 2,
    **dict.fromkeys(("wald", "registration", "quality", "bandset", "demo", "evaluation"), 3),
    "runtime": 4,
    "train": 5,
    "batch": 6,
    "cli": 7,
}
#: Packages only ``ssc_edge.train`` may import.
HEAVY = ("tensorflow", "tf2onnx", "keras")

#: Circles tolerated for now: a circle found passes only inside one of these sets of modules (it may shrink, never
#: grow or appear elsewhere), and the test fails once a set holds no circle, so that its entry goes too. None today.
KNOWN_CIRCLES: frozenset[frozenset[str]] = frozenset()


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """(ssc_edge modules, other top-level packages) that module ``name`` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from . import x`` imports the submodule x (if it is one), not the package's __init__
            subs = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES]
            targets = subs if node.module is None and subs else [module, *subs]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "ssc_edge":
                while target not in MODULES and "." in target:  # ``from .x import function``
                    target = target.rpartition(".")[0]
                if target != name:
                    ours.add(target)
            else:
                theirs.add(target.split(".")[0])
    return ours, theirs


GRAPH = {name: _imports(name, path)[0] for name, path in MODULES.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return LAYERS[top]


def _circles() -> set[frozenset[str]]:
    """Every strongly connected set of two or more modules (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], set()
    counter = [0]
    for root in GRAPH:
        if root in index:
            continue
        work = [(root, iter(sorted(GRAPH[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def test_every_module_has_a_layer():
    unknown = sorted(m for m in MODULES if (m.split(".")[1] if "." in m else "") not in LAYERS)
    assert unknown == [], f"modules without a layer in tests/test_layers.py: {unknown}"


def test_no_import_circle():
    circles = _circles()
    new = sorted(sorted(c) for c in circles if not any(c <= known for known in KNOWN_CIRCLES))
    assert new == [], f"import circles: {new}"
    gone = sorted(sorted(known) for known in KNOWN_CIRCLES if not any(c <= known for c in circles))
    assert gone == [], f"circles fixed: remove them from KNOWN_CIRCLES: {gone}"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = sorted(
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert upward == []


def test_tensorflow_only_in_train():
    outside = sorted(
        f"{name} imports {package}"
        for name, path in MODULES.items()
        for package in _imports(name, path)[1]
        if package in HEAVY and not name.startswith("ssc_edge.train")
    )
    assert outside == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from . import precision as gate\n", {"ssc_edge.runtime.precision"}),
        ("from ..tiling import Tile\n", {"ssc_edge.tiling"}),
        ("def f():\n    from ..train import fit_and_export\n", {"ssc_edge.train"}),
        ("import ssc_edge.io.sources\n", {"ssc_edge.io.sources"}),
    ],
)
def test_the_parser_sees_each_import_form(tmp_path, source, expected):
    """The checks above can fail: each form of import is found (a function-level one included)."""
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert _imports("ssc_edge.runtime.probe", path)[0] == expected


def test_the_checks_find_a_circle_and_an_upward_import(monkeypatch):
    monkeypatch.setitem(GRAPH, "ssc_edge.tiling", GRAPH["ssc_edge.tiling"] | {"ssc_edge.runtime.sharpen"})
    assert any({"ssc_edge.tiling", "ssc_edge.runtime.sharpen"} <= circle for circle in _circles())
    with pytest.raises(AssertionError, match=r"ssc_edge.tiling \(layer 0\) imports ssc_edge.runtime.sharpen"):
        test_no_import_from_a_lower_layer_to_a_higher_one()
