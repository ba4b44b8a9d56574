"""reserved and blocked positions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 02:56:11.754968+00:00
"""

import sqlalchemy as sa
from alembic import op


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "position_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("container_id", sa.Integer(), nullable=False),
        sa.Column("pos_row", sa.Integer(), nullable=False),
        sa.Column("pos_col", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "reserved",
                "blocked",
                name="positionholdkind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["storage_containers.id"],
            name=op.f("fk_position_holds_container_id_storage_containers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_holds")),
        sa.UniqueConstraint(
            "container_id", "pos_row", "pos_col", name=op.f("uq_position_holds_container_id_pos_row_pos_col")
        ),
    )


def downgrade() -> None:
    op.drop_table("position_holds")
