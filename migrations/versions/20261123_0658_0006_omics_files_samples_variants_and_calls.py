"""omics files, samples, variants and calls

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 06:58:01.045845+00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "omics_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "exome",
                "rna_seq",
                "methylation",
                "proteomics",
                "metabolomics",
                name="omicskind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("format", sa.String(length=16), nullable=False, comment="Reader that reads it: vcf, …"),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False, comment="Path under the omics storage root"),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("reference_genome", sa.String(length=32), nullable=True, comment="e.g. GRCh38"),
        sa.Column("platform", sa.String(length=64), nullable=True),
        sa.Column("pipeline", sa.String(length=128), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "registered",
                "ingested",
                "failed",
                name="filestatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("variant_count", sa.Integer(), nullable=False),
        sa.Column("call_count", sa.Integer(), nullable=False),
        sa.Column("feature_count", sa.Integer(), nullable=False),
        sa.Column(
            "matrix_uri",
            sa.Text(),
            nullable=True,
            comment="The ingested matrix as .h5ad under the storage root",
        ),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_omics_files")),
        sa.UniqueConstraint("sha256", name=op.f("uq_omics_files_sha256")),
    )
    op.create_table(
        "variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chrom", sa.String(length=32), nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("alt", sa.Text(), nullable=False),
        sa.Column("gene", sa.String(length=32), nullable=True),
        sa.Column("consequence", sa.String(length=128), nullable=True),
        sa.Column(
            "protein_change", sa.String(length=64), nullable=True, comment="One-letter HGVS, e.g. p.V600E"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variants")),
        sa.UniqueConstraint("chrom", "pos", "ref", "alt", name=op.f("uq_variants_chrom_pos_ref_alt")),
    )
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.create_index("ix_variants_gene_protein_change", ["gene", "protein_change"], unique=False)

    op.create_table(
        "omics_file_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("sample_name", sa.String(length=128), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=True),
        sa.Column(
            "qc",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="Per-sample QC of an ingested matrix (scanpy metrics, detection)",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["omics_files.id"],
            name=op.f("fk_omics_file_samples_file_id_omics_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"], ["specimens.id"], name=op.f("fk_omics_file_samples_specimen_id_specimens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_omics_file_samples")),
        sa.UniqueConstraint("file_id", "sample_name", name=op.f("uq_omics_file_samples_file_id_sample_name")),
    )
    with op.batch_alter_table("omics_file_samples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_omics_file_samples_specimen_id"), ["specimen_id"], unique=False)

    op.create_table(
        "variant_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("genotype", sa.String(length=16), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=True),
        sa.Column("alt_depth", sa.Integer(), nullable=True),
        sa.Column("allele_fraction", sa.Double(), nullable=True),
        sa.Column("filter", sa.String(length=64), nullable=True, comment="FILTER of the record: PASS, …"),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["omics_files.id"],
            name=op.f("fk_variant_calls_file_id_omics_files"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"], ["specimens.id"], name=op.f("fk_variant_calls_specimen_id_specimens")
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["variants.id"], name=op.f("fk_variant_calls_variant_id_variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variant_calls")),
        sa.UniqueConstraint(
            "variant_id",
            "file_id",
            "specimen_id",
            name=op.f("uq_variant_calls_variant_id_file_id_specimen_id"),
        ),
    )
    with op.batch_alter_table("variant_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_variant_calls_file_id"), ["file_id"], unique=False)
        batch_op.create_index("ix_variant_calls_specimen_id", ["specimen_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("variant_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_variant_calls_specimen_id")
        batch_op.drop_index(batch_op.f("ix_variant_calls_file_id"))

    op.drop_table("variant_calls")
    with op.batch_alter_table("omics_file_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_omics_file_samples_specimen_id"))

    op.drop_table("omics_file_samples")
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.drop_index("ix_variants_gene_protein_change")

    op.drop_table("variants")
    op.drop_table("omics_files")
