"""The omics package's query fields: assays measured on an aliquot, variant calls, QC."""

from __future__ import annotations

import itertools
import math
import re

import sqlalchemy as sa

from biobank.db import db
from biobank.query import Field
from omics.formats.matrix import read_feature
from omics.models import (
    FileStatus,
    OmicsFile,
    OmicsFileSample,
    OmicsKind,
    Variant,
    VariantCall,
    somatic_tumour_call,
)
from omics.services import storage_root


def _assay_kind() -> sa.Select:
    return (
        sa.select(OmicsFileSample.specimen_id.label("key"), OmicsFile.kind.label("value"))
        .join(OmicsFile, OmicsFile.id == OmicsFileSample.file_id)
        .where(OmicsFileSample.specimen_id.is_not(None), OmicsFile.status != FileStatus.FAILED)
    )


def _qc_pass() -> sa.Select:
    return sa.select(
        OmicsFileSample.specimen_id.label("key"), OmicsFileSample.qc["pass"].as_boolean().label("value")
    ).where(OmicsFileSample.specimen_id.is_not(None))


def _calls(value: sa.ColumnElement) -> sa.Select:
    """The aliquots' somatic tumour calls, as carriers answer them (a matched normal's
    alternate reads do not make its aliquot carry the variant)."""
    return (
        sa.select(
            VariantCall.specimen_id.label("key"),
            value.label("value"),
            Variant.gene.label("gene"),
            Variant.protein_change.label("protein_change"),
        )
        .join(Variant, Variant.id == VariantCall.variant_id)
        .where(somatic_tumour_call())
    )


def _split_gene_aa_change(value: str) -> dict[str, str] | None:
    """``BRAF V600E`` → gene BRAF, protein change p.V600E."""
    gene, _, change = value.partition(" ")
    if not gene or not change or " " in change:
        return None
    return {"gene": gene, "protein_change": f"p.{change}"}


def _gene_aa_change() -> sa.ColumnElement:
    """``BRAF V600E``: GDC's gene_aa_change, from the gene and the one-letter HGVS change."""
    change = sa.func.substr(Variant.protein_change, 3)  # drop "p."
    return sa.case((Variant.protein_change.is_(None), None), else_=Variant.gene + sa.literal(" ") + change)


_names = itertools.count(1)
GENE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
EXPRESSION = "expression."
EXPRESSION_ENTRY = {
    "field": "expression.<gene>",
    "type": "number",
    "entity": "specimen",
    "values": None,
    "unit": "CPM",
    "facet": False,
    "package": "omics",
    "description": "Expression of a gene (symbol or Ensembl id) in counts per million of the "
    "aliquot's ingested RNA-Seq matrices, e.g. expression.PMEL > 100",
}


def expression_field(name: str) -> Field | None:
    """``expression.<gene>``: read from the stored matrices when a filter asks for it."""
    gene = name[len(EXPRESSION) :]
    if not GENE.match(gene):
        return None
    return Field(
        name,
        "number",
        "specimen_id",
        lambda: _expression(gene),
        f"Expression of {gene} in counts per million (RNA-Seq)",
        unit="CPM",
        facet=False,
        group="omics",
    )


def _expression(gene: str) -> sa.Select:
    """(aliquot, CPM) of every linked sample of every ingested RNA-Seq matrix, as VALUES.

    Only the gene's column is read from each ``.h5ad``; an aliquot measured twice counts
    with each value. A gene no matrix has gives no row (so ``>`` matches nothing).
    """
    rows: list[tuple[int, float]] = []
    files = db.session.scalars(
        sa.select(OmicsFile.matrix_uri).where(
            OmicsFile.kind == OmicsKind.RNA_SEQ,
            OmicsFile.status == FileStatus.INGESTED,
            OmicsFile.matrix_uri.is_not(None),
        )
    )
    for uri in files:
        found = read_feature(storage_root() / uri, gene)
        if found is None:
            continue
        obs = found["obs"]
        if "specimen_id" not in obs or "total_counts" not in obs:
            continue
        for specimen, total, value in zip(
            obs["specimen_id"], obs["total_counts"], found["values"], strict=True
        ):
            if int(specimen) > 0 and total and not math.isnan(value):
                rows.append((int(specimen), round(float(value) * 1e6 / float(total), 3)))
    if not rows:
        return sa.select(
            sa.cast(sa.null(), sa.Integer).label("key"), sa.cast(sa.null(), sa.Float).label("value")
        ).where(sa.false())
    # a CTE with a column list: SQLite has no aliased VALUES in FROM; each use its own name
    table = (
        sa.values(sa.column("key", sa.Integer), sa.column("value", sa.Float), name="expression")
        .data(rows)
        .cte(f"expression_{next(_names)}")
    )
    return sa.select(table.c.key, table.c.value)


def omics_fields() -> list[Field]:
    s = "specimen_id"
    return [
        Field(
            "omics.assay_kind",
            "keyword",
            s,
            _assay_kind,
            "An assay with a registered or ingested file for the aliquot",
            values=[k.value for k in OmicsKind],
            to_db=OmicsKind,
            group="omics",
        ),
        Field(
            "omics.qc_pass",
            "boolean",
            s,
            _qc_pass,
            "Whether the aliquot passed the QC of an ingested matrix or alignment file "
            "(RNA-Seq: ≥200 genes and ≤20% mitochondrial counts; other matrices: ≥50% of "
            "features detected; alignments: ≥80% of reads mapped)",
            group="omics",
        ),
        Field(
            "variants.gene",
            "keyword",
            s,
            lambda: _calls(Variant.gene),
            "Gene symbol of a somatic tumour call in the aliquot (not a matched normal's, "
            "not one the caller marks germline), e.g. BRAF",
            facet=False,
            group="omics",
        ),
        Field(
            "variants.protein_change",
            "keyword",
            s,
            lambda: _calls(Variant.protein_change),
            "One-letter HGVS protein change of a call, e.g. p.V600E",
            facet=False,
            group="omics",
        ),
        Field(
            "variants.gene_aa_change",
            "keyword",
            s,
            lambda: _calls(_gene_aa_change()),
            'Gene and protein change of one call, e.g. "BRAF V600E" (GDC\'s gene_aa_change)',
            facet=False,
            group="omics",
            split=_split_gene_aa_change,
        ),
    ]
