"""omics files: the reference as the file writes it, and a lenient registration's warnings

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 03:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("omics_files") as batch:
        batch.add_column(sa.Column(
            "reference", sa.Text(), nullable=True,
            comment="The reference the file names (VCF ##reference), as written"))
        batch.add_column(sa.Column(
            "warnings", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                               "postgresql"),
            server_default="[]", nullable=False,
            comment="What a lenient registration found wrong with the file and kept"))


def downgrade() -> None:
    with op.batch_alter_table("omics_files") as batch:
        batch.drop_column("warnings")
        batch.drop_column("reference")
