"""The omics package's query fields: assays measured on an aliquot, variant calls, QC."""

from __future__ import annotations

import sqlalchemy as sa

from biobank.query import Field
from omics.models import FileStatus, OmicsFile, OmicsFileSample, OmicsKind, Variant, VariantCall


def _assay_kind() -> sa.Select:
    return (sa.select(OmicsFileSample.specimen_id.label("key"), OmicsFile.kind.label("value"))
            .join(OmicsFile, OmicsFile.id == OmicsFileSample.file_id)
            .where(OmicsFileSample.specimen_id.is_not(None),
                   OmicsFile.status != FileStatus.FAILED))


def _qc_pass() -> sa.Select:
    return (sa.select(OmicsFileSample.specimen_id.label("key"),
                      OmicsFileSample.qc["pass"].as_boolean().label("value"))
            .where(OmicsFileSample.specimen_id.is_not(None)))


def _calls(value: sa.ColumnElement) -> sa.Select:
    return (sa.select(VariantCall.specimen_id.label("key"), value.label("value"))
            .join(Variant, Variant.id == VariantCall.variant_id))


def _gene_aa_change() -> sa.ColumnElement:
    """``BRAF V600E``: GDC's gene_aa_change, from the gene and the one-letter HGVS change."""
    change = sa.func.substr(Variant.protein_change, 3)  # drop "p."
    return sa.case((Variant.protein_change.is_(None), None),
                   else_=Variant.gene + sa.literal(" ") + change)


def omics_fields() -> list[Field]:
    s = "specimen_id"
    return [
        Field("omics.assay_kind", "keyword", s, _assay_kind,
              "An assay with a registered or ingested file for the aliquot",
              values=[k.value for k in OmicsKind], to_db=OmicsKind, group="omics"),
        Field("omics.qc_pass", "boolean", s, _qc_pass,
              "Whether the aliquot passed the QC of an ingested matrix or alignment file "
              "(RNA-Seq: ≥200 genes and ≤20% mitochondrial counts; other matrices: ≥50% of "
              "features detected; alignments: ≥80% of reads mapped)", group="omics"),
        Field("variants.gene", "keyword", s, lambda: _calls(Variant.gene),
              "Gene symbol of a non-reference call in the aliquot, e.g. BRAF", facet=False,
              group="omics"),
        Field("variants.protein_change", "keyword", s, lambda: _calls(Variant.protein_change),
              "One-letter HGVS protein change of a call, e.g. p.V600E", facet=False,
              group="omics"),
        Field("variants.gene_aa_change", "keyword", s, lambda: _calls(_gene_aa_change()),
              "Gene and protein change of one call, e.g. \"BRAF V600E\" (GDC's gene_aa_change)",
              facet=False, group="omics"),
    ]
