"""cases: ICD-O-3 morphology and topography of tumours

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 07:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN: SQLite would otherwise copy the table, which others refer to
    op.add_column("cases", sa.Column(
        "icdo3_morphology", sa.String(16), nullable=True,
        comment="ICD-O-3 morphology of a tumour with its behaviour, e.g. 8720/3"))
    op.add_column("cases", sa.Column(
        "icdo3_topography", sa.String(16), nullable=True,
        comment="ICD-O-3 topography of a tumour, e.g. C44.5 (skin of trunk)"))


def downgrade() -> None:
    op.drop_column("cases", "icdo3_topography")
    op.drop_column("cases", "icdo3_morphology")
