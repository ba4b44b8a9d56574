"""import jobs record the process running them, so an interrupted one can be told

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "runner", sa.String(length=128), nullable=True,
            comment="host:pid of the process running the job, to tell an interrupted one"))
        batch_op.add_column(sa.Column(
            "heartbeat_at", sa.DateTime(timezone=True), nullable=True,
            comment="Last sign of life of the running job (PostgreSQL: while it reads the file)"))


def downgrade() -> None:
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("runner")
