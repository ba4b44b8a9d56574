"""custody events may be corrections of earlier events

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 08:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD = ("collected", "received", "processed", "stored", "moved", "checked_out", "checked_in",
       "thawed", "aliquoted", "derived", "reserved", "shipped", "received_at_destination",
       "consumed", "disposed", "marked_missing", "quarantined")
NEW = (*OLD, "corrected")


def _enum(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name="custodyeventtype", native_enum=False, create_constraint=True,
                   length=32)


def _alter(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    with op.batch_alter_table("custody_events", schema=None) as batch_op:
        batch_op.alter_column("event_type", existing_type=_enum(old), type_=_enum(new),
                              existing_nullable=False)


def upgrade() -> None:
    _alter(OLD, NEW)


def downgrade() -> None:
    _alter(NEW, OLD)
