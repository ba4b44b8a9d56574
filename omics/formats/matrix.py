"""Feature × sample matrices as AnnData (``obs`` = samples, ``var`` = features).

* ``matrix``: a delimited table (tab or comma, optionally gzipped) whose first column names
  the features (genes, CpG probes, proteins, metabolites) and every other column is a sample;
  an optional second column ``gene_name``/``symbol`` is kept as ``var["symbol"]``. RNA-Seq
  counts, methylation beta values and abundance matrices all come this way.
* ``star``: a STAR ``ReadsPerGene.out.tab`` of one sample (the unstranded column; the four
  ``N_…`` summary rows are kept in ``uns``).
* ``sesame``: a GDC SeSAMe methylation file of one sample: probe id and beta value.
* ``mztab``: the protein section of mzTab 1.0 (``PRH``/``PRT``, ``protein_abundance_assay``)
  or the small-molecule section of mzTab-M 2 (``SMH``/``SML``, ``abundance_assay``), with
  assay names from the metadata.
* ``h5ad``: AnnData as written by scanpy.

Matrices are built as compressed sparse columns, so one feature across every sample is one
contiguous read, also from a file opened in backed mode.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omics.formats.errors import FormatError
from omics.formats.registry import register

_SYMBOL_COLUMNS = {"gene_name", "symbol", "gene_symbol", "hgnc_symbol"}
_MISSING = {"", "na", "nan", "null", "."}


def _lines(path: Path) -> Iterator[str]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gz else path.open("rb")  # noqa: SIM115 (closed below)
    try:
        with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
            yield from text
    except (OSError, EOFError) as error:
        raise FormatError(f"unreadable (truncated or corrupt compressed data?): {error}", path=path) from None
    except UnicodeDecodeError:
        raise FormatError("not UTF-8 text: is this a binary file?", path=path) from None


def _number(text: str, *, path: Path, line: int, column: str) -> float:
    if text.strip().lower() in _MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise FormatError(f"{text!r} is not a number", path=path, line=line, column=column) from None


def _build(
    path: Path,
    features: list[str],
    samples: list[str],
    columns: list[list[float]],
    *,
    var: dict[str, list[Any]] | None = None,
    uns: dict[str, Any] | None = None,
) -> Any:
    import anndata
    import numpy as np
    import pandas as pd
    from scipy import sparse

    if not features:
        raise FormatError("no feature rows", path=path)
    seen: dict[str, int] = {}
    for i, name in enumerate(samples):
        if name in seen:
            raise FormatError(
                f"sample {name!r} appears twice (columns {seen[name] + 1} and {i + 1})",
                path=path,
                line=1,
                column=name,
            )
        seen[name] = i
    dense = np.asarray(columns, dtype=np.float32)  # samples × features
    matrix = sparse.csc_matrix(np.nan_to_num(dense, nan=0.0))
    adata = anndata.AnnData(
        X=matrix,
        obs=pd.DataFrame(index=pd.Index(samples, dtype=str)),
        var=pd.DataFrame(var or {}, index=pd.Index(features, dtype=str)),
    )
    if np.isnan(dense).any():
        adata.layers["missing"] = sparse.csc_matrix(np.isnan(dense).astype(np.int8))
    adata.uns["lims"] = {k: str(v) for k, v in (uns or {}).items()}
    if not adata.var_names.is_unique:
        dupes = adata.var_names[adata.var_names.duplicated()].unique()[:3]
        raise FormatError(f"feature ids repeat: {', '.join(dupes)}", path=path)
    return adata


class _Reader:
    format_name = ""
    reference: str | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise FormatError("no such file", path=path)

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    @property
    def samples(self) -> list[str]:
        return list(self.to_anndata().obs_names)

    def to_anndata(self) -> Any:
        raise NotImplementedError


def _is_table(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith((".tsv", ".csv", ".txt")) and not name.endswith("readspergene.out.tab")


def _header(first: str, second: str | None) -> tuple[str, list[str]]:
    """The delimiter and the header cells. R's ``write.table`` leaves the row names' column
    out of the header (one cell shorter than the rows): it is given back, empty."""
    delimiter = "\t" if first.count("\t") >= first.count(",") else ","
    header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter), [])]
    if second is not None and header:
        row = next(csv.reader([second], delimiter=delimiter), [])
        if len(row) == len(header) + 1:
            header = ["", *header]
    return delimiter, header


@register("matrix", _is_table, fallback=True)
class MatrixReader(_Reader):
    """A delimited table: features by row, samples by column (R ``write.table`` output, whose
    header has no cell over the row names, included)."""

    @property
    def samples(self) -> list[str]:
        lines = _lines(self.path)
        first = next(lines, "")
        _, header = _header(first, next(lines, None))
        return header[2:] if len(header) > 1 and header[1].lower() in _SYMBOL_COLUMNS else header[1:]

    def to_anndata(self) -> Any:
        lines = _lines(self.path)
        first = next(lines, None)
        if first is None or not first.strip():
            raise FormatError("empty file: the first line must name the samples", path=self.path)
        second = next(lines, None)
        delimiter, header = _header(first, second)
        if second is not None:
            lines = itertools.chain([second], lines)
        if len(header) < 2:
            raise FormatError("the first line names no sample column", path=self.path, line=1)
        symbol = 1 if header[1].lower() in _SYMBOL_COLUMNS else None
        start = 2 if symbol else 1
        samples = header[start:]
        columns: list[list[float]] = [[] for _ in samples]
        features: list[str] = []
        symbols: list[str] = []
        for number, row in enumerate(csv.reader(lines, delimiter=delimiter), start=2):
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise FormatError(
                    f"{len(row)} cells; the header has {len(header)}", path=self.path, line=number
                )
            features.append(row[0].strip())
            if symbol:
                symbols.append(row[1].strip())
            for i, cell in enumerate(row[start:]):
                columns[i].append(_number(cell, path=self.path, line=number, column=samples[i]))
        return _build(
            self.path,
            features,
            samples,
            columns,
            var={"symbol": symbols} if symbol else None,
            uns={"source_format": "matrix", "source_file": self.path.name},
        )


@register("star", lambda p: p.name.lower().removesuffix(".gz").endswith("readspergene.out.tab"))
class StarReader(_Reader):
    def to_anndata(self) -> Any:
        sample = self.path.name.split(".")[0].removesuffix("ReadsPerGene").rstrip("_.") or "sample"
        features, values, summary = [], [], {}
        for number, line in enumerate(_lines(self.path), start=1):
            cells = line.rstrip("\r\n").split("\t")
            if len(cells) != 4:
                raise FormatError(
                    f"{len(cells)} columns; STAR writes 4 (gene, unstranded, strand 1, strand 2)",
                    path=self.path,
                    line=number,
                )
            value = _number(cells[1], path=self.path, line=number, column="unstranded")
            if cells[0].startswith("N_"):
                summary[cells[0]] = int(value)
                continue
            features.append(cells[0])
            values.append(value)
        return _build(
            self.path,
            features,
            [sample],
            [values],
            uns={"source_format": "star", "source_file": self.path.name, **summary},
        )


_SESAME = re.compile(r"\.(sesame|level3betas)\.", re.IGNORECASE)


@register("sesame", lambda p: bool(_SESAME.search(p.name)))
class SesameReader(_Reader):
    def to_anndata(self) -> Any:
        sample = _SESAME.split(self.path.name)[0]
        features, values = [], []
        for number, line in enumerate(_lines(self.path), start=1):
            cells = line.rstrip("\r\n").split("\t")
            if number == 1 and len(cells) == 2 and not _looks_numeric(cells[1]):
                continue  # a header line
            if len(cells) != 2:
                raise FormatError(
                    f"{len(cells)} columns; a SeSAMe file has probe and beta", path=self.path, line=number
                )
            beta = _number(cells[1], path=self.path, line=number, column="beta")
            if not math.isnan(beta) and not 0 <= beta <= 1:
                raise FormatError(f"beta {beta} is outside 0–1", path=self.path, line=number, column="beta")
            features.append(cells[0])
            values.append(beta)
        return _build(
            self.path,
            features,
            [sample],
            [values],
            uns={"source_format": "sesame", "source_file": self.path.name},
        )


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip().lower() in _MISSING
    return True


def _is_mztab(path: Path) -> bool:
    """An mzTab file by its name, or by its content (PRIDE writes ``*.xml-mztab.txt``):
    comment lines, then metadata rows starting ``MTD``."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".mztab") or ("mztab" in name and name.endswith(".txt")):
        return True
    if not name.endswith((".txt", ".tsv")) or not path.is_file():
        return False
    try:
        for line in _lines(path):
            if line.strip() and not line.startswith("COM"):
                return line.startswith("MTD\t")
    except FormatError:
        return False
    return False


#: an abundance column of mzTab 1.0 (``protein_``/``smallmolecule_``…) or mzTab-M 2
_ABUNDANCE = re.compile(r"(?:[a-z_]+_)?abundance_(assay|study_variable)\[(\d+)\]")
#: the sections holding one quantified feature per row, by their header and row prefixes
_SECTIONS = {"PRH": "PRT", "SMH": "SML", "PEH": "PEP"}


@register("mztab", _is_mztab)
class MzTabReader(_Reader):
    """mzTab 1.0 (Complete or Summary, proteins, peptides or small molecules) and mzTab-M
    2.x small molecules. The quantified section read is the first of proteins, small
    molecules, peptides that has rows; its assay abundances are the samples (a Summary
    file has only study-variable abundances: those, then). Sample names come from the
    metadata: the assay's name, else the name or description of the sample it refers to."""

    def to_anndata(self) -> Any:
        meta: dict[str, str] = {}
        headers: dict[str, tuple[int, list[str]]] = {}
        rows: dict[str, list[tuple[int, list[str]]]] = {}
        for number, line in enumerate(_lines(self.path), start=1):
            cells = line.rstrip("\r\n").split("\t")
            kind = cells[0]
            if kind == "MTD" and len(cells) >= 3:
                meta[cells[1]] = cells[2]
            elif kind in _SECTIONS:
                headers[kind] = (number, cells)
            elif kind in _SECTIONS.values():
                head = next(h for h, r in _SECTIONS.items() if r == kind)
                if head not in headers:
                    raise FormatError(f"{kind} row before its {head} header", path=self.path, line=number)
                rows.setdefault(kind, []).append((number, cells))
        section = next((h for h in _SECTIONS if rows.get(_SECTIONS[h])), None)
        if section is None:
            section = next((h for h in _SECTIONS if h in headers), None)
        if section is None:
            raise FormatError(
                "no protein (PRH), small-molecule (SMH) or peptide (PEH) section", path=self.path
            )
        line, header = headers[section]
        found = [
            (m.group(1), int(m.group(2)), i) for i, h in enumerate(header) if (m := _ABUNDANCE.fullmatch(h))
        ]
        level = "assay" if any(kind == "assay" for kind, _, _ in found) else "study_variable"
        columns_at = [(n, i) for kind, n, i in found if kind == level]
        if not columns_at:
            raise FormatError(
                f"the {section} header has no abundance columns "
                "(abundance_assay[n] or abundance_study_variable[n])",
                path=self.path,
                line=line,
            )
        samples = [self._name(level, n) for n, _ in columns_at]
        features, values = [], []
        for number, cells in rows.get(_SECTIONS[section], []):
            row = dict(zip(header, cells, strict=False))
            feature = next(
                (
                    row[k].strip()
                    for k in ("accession", "SML_ID", "identifier", "database_identifier", "sequence")
                    if row.get(k, "").strip() not in ("", "null")
                ),
                f"row{number}",
            )
            features.append(feature)
            values.append(
                [
                    _number(cells[i] if i < len(cells) else "", path=self.path, line=number, column=header[i])
                    for _, i in columns_at
                ]
            )
        columns = [list(col) for col in zip(*values, strict=True)] if values else [[] for _ in samples]
        return _build(
            self.path,
            features,
            samples,
            columns,
            uns={
                "source_format": "mztab",
                "mztab_version": meta.get("mzTab-version", ""),
                "mztab_mode": meta.get("mzTab-mode", ""),
                "abundance_level": level,
                "source_file": self.path.name,
            },
        )

    def _name(self, level: str, n: int) -> str:
        """A sample's name from the metadata (``assay[n]``, its ``sample_ref``'s name or
        description, a study variable's description), else the column's."""
        meta = self._meta
        own = meta.get(f"{level}[{n}]")
        if own and own != "null":
            return own
        if level == "assay":
            ref = meta.get(f"assay[{n}]-sample_ref", "").split("|")[0].strip()
            for key in (ref, f"{ref}-description"):
                if ref and meta.get(key) and meta[key] != "null":
                    return meta[key]
        description = meta.get(f"{level}[{n}]-description")
        if description and description != "null":
            return description
        return f"{level}[{n}]"

    @property
    def _meta(self) -> dict[str, str]:
        if not hasattr(self, "_meta_cache"):
            self._meta_cache = {
                cells[1]: cells[2]
                for line in _lines(self.path)
                if (cells := line.rstrip("\r\n").split("\t"))[0] == "MTD" and len(cells) >= 3
            }
        return self._meta_cache


@register("h5ad", lambda p: p.name.lower().endswith(".h5ad"))
class H5adReader(_Reader):
    def to_anndata(self) -> Any:
        import anndata

        try:
            adata = anndata.read_h5ad(self.path)
        except Exception as error:  # h5py and anndata raise many kinds
            raise FormatError(f"not a readable AnnData file: {error}", path=self.path) from None
        if not adata.obs_names.is_unique:
            raise FormatError("sample (obs) names repeat", path=self.path)
        return adata


def read_feature(path: Path, feature: str) -> dict[str, Any] | None:
    """One feature (a ``var`` name, or a ``var["symbol"]``) of a stored ``.h5ad`` across all
    samples, read straight from the HDF5 file: only that column of a compressed-sparse-column
    matrix (or of a dense one) is read, never the whole matrix. ``None`` if it is not there.
    Returns the feature id, the ``obs`` table and the values (NaN where ``missing``)."""
    import h5py
    import numpy as np
    from anndata.io import read_elem, sparse_dataset

    with h5py.File(path, "r") as f:
        var = read_elem(f["var"])
        if feature in var.index:
            j = var.index.get_loc(feature)
        elif "symbol" in var and (var["symbol"] == feature).any():
            j = int(np.flatnonzero(var["symbol"].to_numpy() == feature)[0])
        else:
            return None

        def column(node: Any) -> Any:
            if isinstance(node, h5py.Dataset):
                return np.asarray(node[:, j]).ravel()
            return np.asarray(sparse_dataset(node)[:, j].toarray()).ravel()

        values = column(f["X"]).astype(float)
        if "layers" in f and "missing" in f["layers"]:
            values[column(f["layers"]["missing"]) != 0] = np.nan
        return {"feature": str(var.index[j]), "obs": read_elem(f["obs"]), "values": values}
