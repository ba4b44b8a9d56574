"""scans, custody checkpoints and rack scans

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 01:49:09.860905+00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


APPEND_ONLY_TABLES = ("custody_events", "custody_checkpoints")


def upgrade() -> None:
    op.create_table(
        "barcode_sequences",
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_barcode_sequences")),
    )
    op.create_table(
        "custody_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_event_id", sa.Integer(), nullable=False, comment="Last custody event covered"),
        sa.Column(
            "specimen_count", sa.Integer(), nullable=False, comment="Specimens with at least one event"
        ),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column(
            "buckets",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment='{"<specimen id // 256>": SHA-256 of that bucket\'s chain heads}',
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False, comment="HMAC-SHA256 with the custody key"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custody_checkpoints")),
    )
    op.create_table(
        "rack_scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("container_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_format", sa.String(length=32), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("rack_barcode", sa.String(length=64), nullable=True),
        sa.Column(
            "positions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment='{"A1": "barcode" or null}',
        ),
        sa.Column(
            "diff", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "confirmed",
                name="rackscanstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_rack_scans_actor_id_users")),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["storage_containers.id"],
            name=op.f("fk_rack_scans_container_id_storage_containers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rack_scans")),
    )
    with op.batch_alter_table("rack_scans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rack_scans_container_id"), ["container_id"], unique=False)

    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_event_id", sa.String(length=64), nullable=False),
        sa.Column(
            "request_hash",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of the scan's content, to refuse a reused id",
        ),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("custody_event_id", sa.Integer(), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "receive",
                "store",
                "move",
                "check_out",
                "check_in",
                "thaw",
                "ship",
                "receive_at_destination",
                "consume",
                "dispose",
                "mark_missing",
                name="scanaction",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False, comment="Scanner clock"),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "response",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="The answer given to the scanner",
        ),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_scans_actor_id_users")),
        sa.ForeignKeyConstraint(
            ["custody_event_id"], ["custody_events.id"], name=op.f("fk_scans_custody_event_id_custody_events")
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"], ["specimens.id"], name=op.f("fk_scans_specimen_id_specimens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
        sa.UniqueConstraint("client_event_id", name=op.f("uq_scans_client_event_id")),
    )
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scans_specimen_id"), ["specimen_id"], unique=False)

    with op.batch_alter_table("specimens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_specimens_label"), ["label"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # Not even an administrator with SQL access may rewrite custody history unnoticed:
        # UPDATE, DELETE and TRUNCATE are refused by the database itself.
        op.execute(
            """
            CREATE FUNCTION custody_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the custody ledger is append-only: % on % refused',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION custody_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS custody_append_only()")
    with op.batch_alter_table("specimens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_specimens_label"))

    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scans_specimen_id"))

    op.drop_table("scans")
    with op.batch_alter_table("rack_scans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rack_scans_container_id"))

    op.drop_table("rack_scans")
    op.drop_table("custody_checkpoints")
    op.drop_table("barcode_sequences")
