"""The suite's shape, read from its imports (issue 29.3): a module imports only from its own layer or lower
ones, experiments/ keeps at most 8 modules at its top level beside its packages, no module passes 400 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "experiments"
# Low to high; a part imports only parts of its own rank or lower. Parts not named here (a new top-level
# module, a new package) must be given a rank.
RANK = {"registry": 0, "overrides": 1, "store": 2, "dispatch": 3, "report": 4, "bench": 5, "run": 5}
MAX_TOP_LEVEL_MODULES, MAX_LINES = 8, 400


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(file: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("experiments"):
            found |= {node.module} | ({f"{node.module}.{a.name}" for a in node.names} if node.module == "experiments"
                                      else set())
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("experiments")}
    return {name for name in found if _part(name) in RANK}


def _modules() -> list[Path]:
    return sorted(SUITE.rglob("*.py"))


@pytest.mark.parametrize("file", _modules(), ids=lambda f: str(f.relative_to(SUITE)))
def test_no_import_reaches_a_higher_layer(file):
    own = file.relative_to(SUITE).parts[0].removesuffix(".py")
    if own == "__init__":
        return
    assert own in RANK, f"experiments/{own}: give it a layer in RANK (tests/test_layers.py)"
    higher = sorted(name for name in _imports(file) if RANK[_part(name)] > RANK[own])
    assert not higher, f"{file.relative_to(SUITE.parent)} (layer {own}) imports {higher}, from a higher layer"


@pytest.mark.parametrize("file", _modules(), ids=lambda f: str(f.relative_to(SUITE)))
def test_no_module_passes_400_lines(file):
    assert len(file.read_text().splitlines()) <= MAX_LINES, f"{file} is over {MAX_LINES} lines: split it by concern"


def test_the_top_level_holds_at_most_8_modules_beside_its_packages():
    modules = sorted(p.name for p in SUITE.glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_the_library_never_imports_the_suite():
    library = SUITE.parent / "trans3dhead"
    for file in sorted(library.rglob("*.py")):
        tree = ast.parse(file.read_text())
        names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module] + \
                [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [n for n in names if n.split(".")[0] == "experiments"], file
