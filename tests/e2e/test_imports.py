"""The import order of docs/ARCHITECTURE.md holds: every import of every module under
src/vitpose (top-level and lazy ones inside functions) points to a layer on its left."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "vitpose"


def _layers() -> tuple[dict[str, int], set[int]]:
    """``{top-level module: layer index}`` and the layers whose modules are independent
    (``/`` groups), from the 'Import order:' line of docs/ARCHITECTURE.md."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    line = next(line for line in text.splitlines() if line.startswith("Import order:"))
    layer_of: dict[str, int] = {}
    independent: set[int] = set()
    for i, group in enumerate(line.split(":", 1)[1].split("→")):
        names = re.findall(r"[A-Za-z_][A-Za-z_0-9]*", group)
        if "/" in group:
            independent.add(i)
        for name in names:
            layer_of[name] = i
    return layer_of, independent


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """``(line, imported vitpose module)`` for every import statement in the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1]
                                + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:  # `from vitpose import distributed` imports a module
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in known else base))
    return [(line, name) for line, name in found if name.split(".")[0] == "vitpose"]


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _violations() -> list[str]:
    layer_of, independent = _layers()
    modules = _modules()
    problems = []
    for module, path in sorted(modules.items()):
        here = _top(module)
        assert here in layer_of, f"{module}: top-level module '{here}' is not in ARCHITECTURE.md"
        for line, target in _imports(module, path, set(modules)):
            there = _top(target)
            if there == here:
                continue
            a, b = layer_of[here], layer_of.get(there)
            rel = path.relative_to(ROOT)
            if b is None:
                problems.append(f"{rel}:{line} imports {target}, which ARCHITECTURE.md omits")
            elif b > a or there == "__init__":
                problems.append(f"{rel}:{line}: {here} imports {there} (a layer to its right)")
            elif b == a and a in independent:
                problems.append(f"{rel}:{line}: {here} imports {there} (independent leaves)")
    return problems


def test_imports_follow_the_documented_order() -> None:
    assert _violations() == []


def test_checkpoints_never_import_hub() -> None:
    """The cycle of issue 16.12: checkpoints reads files, hub turns names into files."""
    modules = _modules()
    targets = {t for _, t in _imports("vitpose.checkpoints", modules["vitpose.checkpoints"],
                                      set(modules))}
    assert "vitpose.hub" not in targets
    assert "vitpose.checkpoints" in {t for _, t in _imports("vitpose.hub", modules["vitpose.hub"],
                                                             set(modules))}


def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch) -> None:
    """The checker would catch the old cycle (a lazy ``from .hub import`` in checkpoints)."""
    fake = tmp_path / "src" / "vitpose"
    fake.mkdir(parents=True)
    (fake / "checkpoints.py").write_text("def f():\n    from .hub import resolve_weights\n")
    (fake / "hub.py").write_text("from . import checkpoints\n")
    (fake / "__init__.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ARCHITECTURE.md").write_text(
        "Import order: `checkpoints` → `hub` → `__init__`\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert _violations() == ["src/vitpose/checkpoints.py:2: checkpoints imports hub "
                             "(a layer to its right)"]


def _graph() -> dict[str, set[str]]:
    """``{module: the vitpose modules it imports}`` (top-level and lazy imports; a package's
    ``__init__`` counts as the package)."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for _, target in _imports(module, path, known):
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted.
    A package importing its own sub-modules (``__init__`` re-exports) is not a circle, so the
    edges from a package to the modules inside it are left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def edges(v: str) -> list[str]:
        return sorted(w for w in graph.get(v, ()) if not w.startswith(v + "."))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    import sys
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_circle() -> None:
    """No module imports (directly or through others, lazily included) a module that imports
    it back: `vitpose.cli.predict` and the sharded job once did."""
    assert _cycles(_graph()) == []


def test_the_circle_checker_sees_a_circle() -> None:
    graph = {"vitpose.cli.predict": {"vitpose.cli.scale"},
             "vitpose.cli.scale": {"vitpose.cli.predict"}, "vitpose.cli": {"vitpose.cli.predict"}}
    assert _cycles(graph) == [["vitpose.cli.predict", "vitpose.cli.scale"]]


def _private_imports() -> list[str]:
    """``from vitpose.x import _name`` where ``_name`` is a private name of another module
    (a private sub-module such as ``codecs._ops`` imported by its own package is fine)."""
    modules = _modules()
    problems = []
    for module, path in sorted(modules.items()):
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1]
                                + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "vitpose":
                continue
            for alias in node.names:
                if not alias.name.startswith("_") or alias.name.startswith("__"):
                    continue
                if f"{base}.{alias.name}" in modules and base == package:
                    continue  # a package's own private sub-module
                if base != module:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module} "
                                    f"imports {base}.{alias.name}")
    return problems


#: Private-name imports that remain in modules being reworked on other branches (the records
#: helpers of `datasets.records`, the codecs' heatmap check, the benchmark's sync helper):
#: ``(importing module, imported name)``. The list only shrinks; anything else fails.
def test_no_module_imports_another_modules_private_name() -> None:
    assert list(_private_imports()) == []


def test_the_private_name_checker_sees_one(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "src" / "vitpose"
    (fake / "inference").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "inference" / "__init__.py").write_text("")
    (fake / "inference" / "video.py").write_text("def _helper():\n    pass\n")
    (fake / "inference" / "sharding.py").write_text("from .video import _helper\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert _private_imports() == ["src/vitpose/inference/sharding.py:1: "
                                  "vitpose.inference.sharding imports "
                                  "vitpose.inference.video._helper"]


def test_predict_sits_between_inference_and_the_front_ends() -> None:
    """`vitpose.predict` (the job) is right of `inference` and left of `demo` and `cli`: the
    front-ends call the job, the job calls the library, never the reverse."""
    layer_of, _ = _layers()
    assert layer_of["inference"] < layer_of["predict"] < layer_of["demo"] < layer_of["cli"]
    graph = _graph()
    for module, targets in graph.items():
        if _top(module) in ("inference", "models", "checkpoints", "hub", "datasets"):
            assert not any(_top(t) == "predict" for t in targets), module
    # every front-end runs the job from `vitpose.predict`, none holds its own
    assert any(_top(t) == "predict" for t in graph["vitpose.cli.predict"])
    assert any(_top(t) == "predict" for t in graph["vitpose.demo.app"])


def test_outer_ring_files_stay_small() -> None:
    """The outer ring is cut along its seams: no file of inference/, predict/, demo/ or cli/
    is longer than 900 lines, and cli/ only parses, calls and reports."""
    long = [f"{p.relative_to(PACKAGE)}: {n} lines"
            for folder in ("inference", "predict", "demo", "cli")
            for p in sorted((PACKAGE / folder).rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 900]
    assert long == []
