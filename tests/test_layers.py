"""The package rule the architecture rests on: ``biobank`` reaches ``omics`` and ``labels``
only where the app factory registers them (signals and registries do the rest), and their
pure cores import neither Flask nor SQLAlchemy. Every import is walked, those inside
functions included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(ROOT)), node.lineno, name) for name in names]
    return found


def test_biobank_imports_omics_and_labels_only_in_the_app_factory():
    outside = [
        (path, line, name)
        for path, line, name in _imports("biobank")
        if name.split(".")[0] in ("omics", "labels") and path != "biobank/app.py"
    ]
    assert outside == []
    inside = {name for path, _, name in _imports("biobank") if path == "biobank/app.py"}
    assert {"omics", "labels"} <= inside  # the walk sees the factory's own imports


def test_the_pure_cores_import_neither_flask_nor_sqlalchemy():
    for package in ("omics/formats", "labels/render"):
        web = [
            (path, line, name)
            for path, line, name in _imports(package)
            if name.split(".")[0] in ("flask", "flask_smorest", "sqlalchemy", "biobank")
        ]
        assert web == [], package
