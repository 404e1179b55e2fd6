"""The package's shape: layers (import-linter), no cycles, no private names across modules, module
sizes, and a public API that covers what the README and docs import."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = [ROOT / "gnasim", ROOT / "validate" / "gnasim_validate"]
MAX_LINES = 600


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in pkg.rglob("*.py"))


def _module_name(path: Path) -> str:
    base = ROOT / "validate" if "gnasim_validate" in path.parts else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every ``from X import names`` in a file."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names]))
    return out


def test_import_layers_contract():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_no_private_names_imported_across_modules():
    bad = []
    for path in _modules():
        for mod, names in _imports(path):
            if mod.startswith(("gnasim", "gnasim_validate")):
                bad += [f"{_module_name(path)}: {mod}.{n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


def test_no_import_cycles_between_modules():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("gnasim")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if importer == imported or importer.startswith(imported + ".") \
                    or imported.startswith(importer + "."):
                continue     # a package and its own submodules
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycles.append(f"{importer} -> {imported} -> ... -> {importer}")
    assert not cycles, cycles


def test_modules_are_small():
    big = {str(p.relative_to(ROOT)): n for p in _modules()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big


def test_public_api_covers_documented_imports():
    import gnasim

    assert isinstance(gnasim.__all__, list) and gnasim.__all__
    for name in gnasim.__all__:
        assert hasattr(gnasim, name), name
    wanted = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for m in re.finditer(r"^\s*from gnasim import ([^\n]+)", doc.read_text(), re.M):
            wanted |= {n.strip(" ()") for n in m.group(1).split(",") if n.strip(" ()")}
        for m in re.finditer(r"^\s*from (gnasim\.[\w.]+) import", doc.read_text(), re.M):
            raise AssertionError(f"{doc.name} imports {m.group(1)}: document the public API "
                                 "(from gnasim import ...) instead")
    assert wanted <= set(gnasim.__all__), sorted(wanted - set(gnasim.__all__))
