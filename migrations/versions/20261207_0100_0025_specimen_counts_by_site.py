"""specimens: an index the dashboard's counts read instead of the table

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 01:00:00+00:00
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # counts by site, material and status in one index-only scan
    op.create_index(
        "ix_specimens_site_material_status", "specimens", ["site_id", "material_type", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_specimens_site_material_status", table_name="specimens")
