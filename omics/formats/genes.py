"""Gene models (GENCODE or Ensembl GTF, GFF3), read with pyranges; the genes a variant
overlaps, found with pyranges' interval join (pure: no Flask, no SQLAlchemy).

A full GENCODE GTF holds about 60,000 genes among 3 million transcript, exon and UTR lines.
Only the gene lines are handed to pyranges (the file is streamed once and the others
skipped), so a registration reads 60,000 records, not 3 million. Coordinates are kept as
the files write them: 1-based, inclusive. Contig names are compared without ``chr``
(``chr7`` and ``7`` are one contig; ``chrM`` is ``MT``).
"""

from __future__ import annotations

import functools
import gzip
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omics.formats.errors import FormatError

#: the feature types that are genes in GENCODE/Ensembl GTF and Ensembl GFF3
GENE_FEATURES = frozenset({"gene", "ncRNA_gene", "pseudogene"})
_GTF_ITEM = re.compile(rb'^[A-Za-z_][\w.]*\s+(?:"[^"]*"|[^\s"]+)$')


def _parsable(attributes: bytes) -> bool:
    """Whether pyranges can parse a record's attributes (it prints and skips those it
    cannot): GTF ``key "value";`` pairs, or GFF3 ``key=value`` pairs."""
    items = [item.strip() for item in attributes.split(b";") if item.strip()]
    if not items:
        return False
    return all(_GTF_ITEM.match(item) for item in items) or all(
        b"=" in item and not item.startswith(b"=") for item in items
    )


#: columns of the gene table ``read_genes`` answers
COLUMNS = ("chrom", "start", "end", "name", "gene_id", "gene_type", "strand")


@functools.lru_cache(maxsize=4096)  # a file names few contigs, each on every record
def canonical_chrom(name: str) -> str:
    """One name per contig whatever the convention: ``chr7`` → ``7``, ``chrM`` → ``MT``."""
    bare = name[3:] if name[:3].lower() == "chr" else name
    return "MT" if bare in ("M", "m") else bare


def _is_gff3(path: Path, first_lines: Iterable[bytes]) -> bool:
    if any(line.startswith(b"##gff-version 3") for line in first_lines):
        return True
    name = path.name.lower().removesuffix(".gz")
    return name.endswith((".gff3", ".gff"))


def read_genes(path: str | Path) -> Any:
    """The genes of a GTF or GFF3 file as a pandas DataFrame of ``COLUMNS`` (gzipped files
    too). Raises ``FormatError`` naming the line of a malformed gene record."""
    import pyranges

    path = Path(path)
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    head: list[bytes] = []
    kept = 0
    with tempfile.TemporaryDirectory(prefix="genes-") as folder:
        genes_only = Path(folder) / "genes.txt"
        try:
            with opener(path, "rb") as source, genes_only.open("wb") as target:
                for number, line in enumerate(source, start=1):
                    if number <= 20:
                        head.append(line)
                    if line.startswith(b"#") or not line.strip():
                        continue
                    cells = line.split(b"\t", 8)
                    if len(cells) != 9:
                        raise FormatError(
                            f"{len(cells)} tab-separated columns; a GTF/GFF3 record has 9",
                            path=path,
                            line=number,
                        )
                    if cells[2].decode("ascii", "replace") not in GENE_FEATURES:
                        continue
                    if not (cells[3].isdigit() and cells[4].isdigit()) or int(cells[3]) > int(cells[4]):
                        raise FormatError(
                            f"start {cells[3][:12]!r} and end {cells[4][:12]!r} "
                            "are not positions with start ≤ end",
                            path=path,
                            line=number,
                            column="start",
                        )
                    if not _parsable(cells[8].rstrip(b"\r\n")):
                        raise FormatError(
                            'the attributes are not key "value"; pairs (GTF) or key=value pairs (GFF3)',
                            path=path,
                            line=number,
                            column="attributes",
                        )
                    target.write(line if line.endswith(b"\n") else line + b"\n")
                    kept += 1
        except (OSError, EOFError) as error:
            raise FormatError(f"unreadable (truncated or not gzip?): {error}", path=path) from None
        if not kept:
            raise FormatError(
                "no gene records (feature 'gene' in column 3): is this a GTF or GFF3 gene model?", path=path
            )
        gff3 = _is_gff3(path, head)
        try:
            ranges = (pyranges.read_gff3 if gff3 else pyranges.read_gtf)(str(genes_only))
        except Exception as error:  # pyranges raises pandas' and its own errors
            raise FormatError(
                f"not a readable {'GFF3' if gff3 else 'GTF'} file: {error}", path=path
            ) from None
    return _gene_table(ranges.df, gff3=gff3)


def _gene_table(frame: Any, *, gff3: bool) -> Any:
    import pandas as pd

    def first(*names: str) -> Any:
        for name in names:
            if name in frame.columns:
                return frame[name].astype("string")
        return pd.Series(pd.NA, index=frame.index, dtype="string")

    gene_id = first("gene_id", "ID")
    if gff3:
        gene_id = gene_id.str.removeprefix("gene:")
    place = (
        frame["Chromosome"].astype(str)
        + ":"
        + (frame["Start"] + 1).astype(str)
        + "-"
        + frame["End"].astype(str)
    ).astype("string")
    gene_id = gene_id.fillna(place)  # a gene without an id is named by where it is
    name = first("gene_name", "Name").fillna(gene_id)
    table = pd.DataFrame(
        {
            "chrom": frame["Chromosome"].astype(str).map(canonical_chrom),
            "start": frame["Start"].astype("int64") + 1,  # pyranges is 0-based, half-open
            "end": frame["End"].astype("int64"),
            "name": name,
            "gene_id": gene_id,
            "gene_type": first("gene_type", "gene_biotype", "biotype"),
            "strand": frame["Strand"].astype(str) if "Strand" in frame.columns else ".",
        }
    )
    # plain Python values, None where the file gave none (pandas' NA has no truth value)
    return table.astype(object).where(table.notna(), None).reset_index(drop=True)


def overlapping(genes: Any, variants: Any) -> dict[int, str]:
    """For each variant (DataFrame of ``id``, ``chrom``, ``pos``, ``ref``) the gene it
    overlaps: a protein-coding gene before any other, then the shortest. Variants that
    overlap no gene are left out."""
    import pandas as pd
    import pyranges

    if genes.empty or variants.empty:
        return {}
    span = variants["ref"].str.len().clip(lower=1)
    left = pyranges.PyRanges(
        pd.DataFrame(
            {
                "Chromosome": variants["chrom"].astype(str).map(canonical_chrom),
                "Start": variants["pos"].astype("int64") - 1,
                "End": variants["pos"].astype("int64") - 1 + span,
                "vid": variants["id"],
            }
        )
    )
    right = pyranges.PyRanges(
        pd.DataFrame(
            {
                "Chromosome": genes["chrom"],
                "Start": genes["start"] - 1,
                "End": genes["end"],
                "gene": genes["name"],
                "coding": (genes["gene_type"] == "protein_coding").fillna(False).astype(int),
            }
        )
    )
    joined = left.join(right).df
    if joined.empty:
        return {}
    joined["length"] = joined["End_b"] - joined["Start_b"]
    best = joined.sort_values(["vid", "coding", "length"], ascending=[True, False, True])
    best = best.drop_duplicates("vid")
    return dict(zip(best["vid"].astype(int), best["gene"].astype(str), strict=True))
