"""Omics files linked to the aliquots they measure, and the variants called in them."""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship

from biobank.db import created_at, db, intpk, str16, str32, str64, str128, str255, timestamp
from biobank.models import Specimen


class OmicsKind(enum.Enum):
    EXOME = "exome"
    RNA_SEQ = "rna_seq"
    METHYLATION = "methylation"
    PROTEOMICS = "proteomics"
    METABOLOMICS = "metabolomics"


class SampleRole(enum.Enum):
    """What a sample column of a file is: the tumour's DNA, its matched normal, tumour RNA."""

    TUMOUR = "tumour"
    NORMAL = "normal"
    RNA_TUMOUR = "rna_tumour"


class FileStatus(enum.Enum):
    REGISTERED = "registered"  # stored and checksummed; not (yet) ingested
    INGESTED = "ingested"
    FAILED = "failed"  # ingestion refused the file; nothing of it is in the database


class OmicsFile(db.Model):
    """A file stored under the omics storage root by its SHA-256, never overwritten."""

    __tablename__ = "omics_files"

    id: Mapped[intpk]
    kind: Mapped[OmicsKind]
    format: Mapped[str16] = mapped_column(comment="Reader that reads it: vcf, …")
    filename: Mapped[str255]
    uri: Mapped[str] = mapped_column(sa.Text, comment="Path under the omics storage root")
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    reference_genome: Mapped[str32 | None] = mapped_column(comment="e.g. GRCh38")
    reference: Mapped[str | None] = mapped_column(
        sa.Text, comment="The reference the file names (VCF ##reference), as written"
    )
    platform: Mapped[str64 | None]
    pipeline: Mapped[str128 | None]
    status: Mapped[FileStatus] = mapped_column(default=FileStatus.REGISTERED)
    error: Mapped[str | None] = mapped_column(sa.Text)
    warnings: Mapped[list[str]] = mapped_column(
        default=list, comment="What a lenient registration found wrong with the file and kept"
    )
    variant_count: Mapped[int] = mapped_column(default=0)
    call_count: Mapped[int] = mapped_column(default=0)
    feature_count: Mapped[int] = mapped_column(default=0)
    matrix_uri: Mapped[str | None] = mapped_column(
        sa.Text, comment="The ingested matrix as .h5ad under the storage root"
    )
    created_by: Mapped[str64]
    created_at: Mapped[created_at]
    ingested_at: Mapped[timestamp | None]

    samples: Mapped[list[OmicsFileSample]] = relationship(
        back_populates="file", cascade="all, delete-orphan", order_by="OmicsFileSample.id"
    )


class OmicsFileSample(db.Model):
    """A sample column of a file and the aliquot it is; ``specimen_id`` is NULL for a name
    that matched no aliquot (reported, never dropped silently)."""

    __tablename__ = "omics_file_samples"
    __table_args__ = (sa.UniqueConstraint("file_id", "sample_name"),)

    id: Mapped[intpk]
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("omics_files.id", ondelete="CASCADE"))
    sample_name: Mapped[str128]
    specimen_id: Mapped[int | None] = mapped_column(sa.ForeignKey("specimens.id"), index=True)
    role: Mapped[SampleRole | None] = mapped_column(
        comment="tumour, normal or rna_tumour: given, from the caller's header or the name"
    )
    qc: Mapped[dict[str, Any]] = mapped_column(
        default=dict, comment="Per-sample QC of an ingested matrix (scanpy metrics, detection)"
    )

    file: Mapped[OmicsFile] = relationship(back_populates="samples")
    specimen: Mapped[Specimen | None] = relationship()


class Variant(db.Model):
    """One alternate allele at one position of a genome build, with its annotation. The
    contig is named without ``chr`` (``7``, ``X``, ``MT``): one name per contig."""

    __tablename__ = "variants"
    __table_args__ = (
        sa.UniqueConstraint("reference_genome", "chrom", "pos", "ref", "alt"),
        sa.Index("ix_variants_gene_protein_change", "gene", "protein_change"),
    )

    id: Mapped[intpk]
    reference_genome: Mapped[str32] = mapped_column(
        default="", comment="The genome build (GRCh37, GRCh38…); empty when no file said"
    )
    chrom: Mapped[str32]
    pos: Mapped[int]
    ref: Mapped[str] = mapped_column(sa.Text)
    alt: Mapped[str] = mapped_column(sa.Text)
    gene: Mapped[str32 | None]
    consequence: Mapped[str128 | None]
    protein_change: Mapped[str64 | None] = mapped_column(comment="One-letter HGVS, e.g. p.V600E")


class VariantCall(db.Model):
    """A non-reference call of a variant in one aliquot, from one file."""

    __tablename__ = "variant_calls"
    __table_args__ = (
        sa.UniqueConstraint("variant_id", "file_id", "specimen_id"),
        sa.Index("ix_variant_calls_specimen_id", "specimen_id"),
    )

    id: Mapped[intpk]
    variant_id: Mapped[int] = mapped_column(sa.ForeignKey("variants.id"))
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("omics_files.id", ondelete="CASCADE"), index=True)
    specimen_id: Mapped[int] = mapped_column(sa.ForeignKey("specimens.id"))
    genotype: Mapped[str16 | None]
    depth: Mapped[int | None]
    alt_depth: Mapped[int | None]
    allele_fraction: Mapped[float | None]
    filter: Mapped[str64 | None] = mapped_column(comment="FILTER of the record: PASS, …")
    somatic: Mapped[bool | None] = mapped_column(
        comment="The caller's somatic status: true somatic, false germline or LOH, null unknown"
    )

    variant: Mapped[Variant] = relationship()
    specimen: Mapped[Specimen] = relationship()


def somatic_tumour_call() -> sa.ColumnElement[bool]:
    """What a carrier is, unless every call is asked for: a call of a sample that is not its
    file's matched normal, and that the caller did not mark germline or LOH."""
    sample = aliased(OmicsFileSample)  # its own: the query may join the samples already
    return sa.and_(
        sa.or_(VariantCall.somatic.is_(None), VariantCall.somatic.is_(True)),
        ~sa.exists()
        .where(
            sample.file_id == VariantCall.file_id,
            sample.specimen_id == VariantCall.specimen_id,
            sample.role == SampleRole.NORMAL,
        )
        .correlate(VariantCall),
    )


class GeneModel(db.Model):
    """The gene model (a GENCODE or Ensembl GTF/GFF3) of one genome build: the genes that
    variants of that build without a VEP/SnpEff annotation are placed in by overlap."""

    __tablename__ = "gene_models"

    id: Mapped[intpk]
    reference_genome: Mapped[str32] = mapped_column(unique=True, comment="e.g. GRCh37")
    filename: Mapped[str255]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    gene_count: Mapped[int]
    created_by: Mapped[str64]
    created_at: Mapped[created_at]

    genes: Mapped[list[Gene]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True
    )


class Gene(db.Model):
    """One gene of a gene model, 1-based inclusive, on a contig named without ``chr``."""

    __tablename__ = "genes"
    __table_args__ = (sa.Index("ix_genes_model_id_chrom_start", "model_id", "chrom", "start"),)

    id: Mapped[intpk]
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("gene_models.id", ondelete="CASCADE"))
    chrom: Mapped[str32]
    start: Mapped[int]
    end: Mapped[int]
    name: Mapped[str64]
    gene_id: Mapped[str64]
    gene_type: Mapped[str64 | None]
    strand: Mapped[str16]

    model: Mapped[GeneModel] = relationship(back_populates="genes")
