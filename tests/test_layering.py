"""The dependency rule of docs/ARCHITECTURE.md, checked on every import statement.

    catalogs  <-  pipeline  ->  model          deploy, catalogs, model: only the root package
                     |
                     v
                  deploy

The root package (``clearcube/``: errors, bands, fingerprint, simulation) imports none of the
four. Imports inside functions count the same as those at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AREAS = ("catalogs", "pipeline", "model", "deploy")
#: area -> the areas it may import (besides the root package and itself).
ALLOWED: dict[str, set[str]] = {
    "root": set(),
    "catalogs": set(),
    "model": set(),
    "deploy": set(),
    "pipeline": {"catalogs", "model", "deploy"},
}


def _area_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "clearcube":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in AREAS else "root"


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "clearcube":  # from clearcube import catalogs, ...
                found += [(node.lineno, f"clearcube.{a.name}") for a in node.names]
    return found


def _sources() -> list[tuple[str, Path]]:
    files = [("root", p) for p in (ROOT / "clearcube").rglob("*.py")]
    for area in AREAS:
        files += [(area, p) for p in (ROOT / area).rglob("*.py")]
    return files


@pytest.mark.parametrize("area", ["root", *AREAS])
def test_each_area_imports_only_what_the_rule_allows(area: str) -> None:
    broken = []
    for owner, path in _sources():
        if owner != area:
            continue
        for line, module in _imports(path):
            target = _area_of(module)
            if target is None or target in (area, "root") or target in ALLOWED[area]:
                continue
            broken.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not broken, (
        f"{area} may import only {sorted(ALLOWED[area]) or 'the root package'}:\n"
        + "\n".join(broken)
    )


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from clearcube.catalogs.search import search\n")
    assert [_area_of(m) for _, m in _imports(bad)] == ["catalogs"]
