"""custody checkpoints exchanged with witness instances: those kept for others, and the
countersignatures others gave ours

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 17:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLES = ("witnessed_checkpoints", "custody_witness_receipts")


def upgrade() -> None:
    op.create_table(
        "witnessed_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance", sa.String(length=128), nullable=False,
                  comment="Name of the instance that sent it"),
        sa.Column("submitted_by", sa.String(length=64), nullable=False,
                  comment="The account here that instance signs in with; only it adds to the "
                  "instance"),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=64), nullable=False,
                  comment="When the instance made it (its clock)"),
        sa.Column("max_event_id", sa.Integer(), nullable=False),
        sa.Column("specimen_count", sa.Integer(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("signature", sa.String(length=64), nullable=False,
                  comment="The instance's own signature of it"),
        sa.Column("key_id", sa.String(length=16), nullable=True,
                  comment="Id of the instance's custody key"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("countersignature", sa.String(length=64), nullable=False,
                  comment="HMAC-SHA256 under this instance's custody key"),
        sa.Column("witness_key_id", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_witnessed_checkpoints")),
        sa.UniqueConstraint("instance", "checkpoint_id",
                            name=op.f("uq_witnessed_checkpoints_instance_checkpoint_id")),
    )
    op.create_table(
        "custody_witness_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False,
                  comment="custody_checkpoints.id (no foreign key: the receipt outlives a "
                  "deleted row)"),
        sa.Column("witness", sa.String(length=255), nullable=False,
                  comment="The witness's base URL"),
        sa.Column("received_at", sa.String(length=64), nullable=False,
                  comment="When the witness received it"),
        sa.Column("countersignature", sa.String(length=64), nullable=False),
        sa.Column("witness_key_id", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_witness_receipts")),
        sa.UniqueConstraint("checkpoint_id", "witness",
                            name=op.f("uq_custody_witness_receipts_checkpoint_id_witness")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # the same refusal as the custody ledger's (custody_append_only, revision 0002)
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION custody_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()"
            )


def downgrade() -> None:
    op.drop_table("custody_witness_receipts")
    op.drop_table("witnessed_checkpoints")
