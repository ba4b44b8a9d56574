"""print job's id at the printer's spooler; CUPS printers on another server

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OLD_ADDRESS = "host:port for ZPL over TCP, queue name for CUPS"
NEW_ADDRESS = "host:port for ZPL over TCP; [zpl:]queue[@host[:port]] for CUPS"


def upgrade() -> None:
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "device_job_id",
                sa.String(length=64),
                nullable=True,
                comment="the job's id at the printer's spooler (CUPS request id), once handed over",
            )
        )
    with op.batch_alter_table("printers", schema=None) as batch_op:
        batch_op.alter_column("address", existing_type=sa.String(length=128),
                              existing_nullable=True, comment=NEW_ADDRESS,
                              existing_comment=OLD_ADDRESS)


def downgrade() -> None:
    with op.batch_alter_table("printers", schema=None) as batch_op:
        batch_op.alter_column("address", existing_type=sa.String(length=128),
                              existing_nullable=True, comment=OLD_ADDRESS,
                              existing_comment=NEW_ADDRESS)
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.drop_column("device_job_id")
