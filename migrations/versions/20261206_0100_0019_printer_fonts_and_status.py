"""printers: a Unicode font stored on a ZPL printer, and the status it last reported

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 01:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("printers") as batch:
        batch.add_column(sa.Column(
            "zpl_font", sa.String(length=32), nullable=True,
            comment="TrueType font stored on a ZPL printer (e.g. E:ANMDS.TTF) for text its "
            "built-in font cannot print, such as Chinese"))
        batch.add_column(sa.Column(
            "asks_status", sa.Boolean(), server_default=sa.true(), nullable=False,
            comment="Ask a ZPL printer over TCP for its status (~HS) with each job"))
        batch.add_column(sa.Column(
            "last_status", sa.String(length=128), nullable=True,
            comment="What the printer last reported: ready, or its faults (paper out, head "
            "open…)"))
        batch.add_column(sa.Column("last_status_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("printers") as batch:
        for column in ("last_status_at", "last_status", "asks_status", "zpl_font"):
            batch.drop_column(column)
