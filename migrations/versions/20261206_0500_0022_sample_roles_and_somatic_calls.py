"""omics: the role of each sample column (tumour, normal, RNA tumour), the caller's somatic status

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 05:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("omics_file_samples") as batch:
        batch.add_column(sa.Column(
            "role", sa.Enum("tumour", "normal", "rna_tumour", name="samplerole",
                            native_enum=False, create_constraint=True, length=32),
            nullable=True,
            comment="tumour, normal or rna_tumour: given, from the caller's header or the name"))
    with op.batch_alter_table("variant_calls") as batch:
        batch.add_column(sa.Column(
            "somatic", sa.Boolean(), nullable=True,
            comment="The caller's somatic status: true somatic, false germline or LOH, null "
            "unknown"))


def downgrade() -> None:
    with op.batch_alter_table("variant_calls") as batch:
        batch.drop_column("somatic")
    with op.batch_alter_table("omics_file_samples") as batch:
        batch.drop_constraint(op.f("ck_omics_file_samples_samplerole"), type_="check")
        batch.drop_column("role")
