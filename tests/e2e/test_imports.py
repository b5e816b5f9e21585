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
