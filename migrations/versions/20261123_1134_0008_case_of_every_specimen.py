"""case of every specimen

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 11:34:20.729611+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("specimens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "case_id",
                sa.Integer(),
                nullable=True,
                comment="Case of its lesion, else of its visit: kept in step by the database session (and set by bulk writers), so cohort queries reach a case in one step",
            )
        )
        batch_op.create_index(batch_op.f("ix_specimens_case_id"), ["case_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_specimens_case_id_cases"), "cases", ["case_id"], ["id"])
    # the case of the specimens there are: their lesion's, else their visit's
    op.execute(
        """
        UPDATE specimens SET case_id = COALESCE(
            (SELECT lesions.case_id FROM lesions WHERE lesions.id = specimens.lesion_id),
            (SELECT collection_events.case_id FROM collection_events
             WHERE collection_events.id = specimens.collection_event_id))
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("specimens", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_specimens_case_id_cases"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_specimens_case_id"))
        batch_op.drop_column("case_id")
