"""gene models: the genes of a genome build, that unannotated variants are placed in

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 04:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gene_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference_genome", sa.String(length=32), nullable=False,
                  comment="e.g. GRCh37"),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("gene_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gene_models")),
        sa.UniqueConstraint("reference_genome", name=op.f("uq_gene_models_reference_genome")),
    )
    op.create_table(
        "genes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("chrom", sa.String(length=32), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("gene_id", sa.String(length=64), nullable=False),
        sa.Column("gene_type", sa.String(length=64), nullable=True),
        sa.Column("strand", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["gene_models.id"],
                                name=op.f("fk_genes_model_id_gene_models"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_genes")),
    )
    op.create_index("ix_genes_model_id_chrom_start", "genes", ["model_id", "chrom", "start"])


def downgrade() -> None:
    op.drop_index("ix_genes_model_id_chrom_start", table_name="genes")
    op.drop_table("genes")
    op.drop_table("gene_models")
