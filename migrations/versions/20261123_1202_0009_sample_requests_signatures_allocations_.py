"""sample requests, signatures, allocations and shipments

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 12:02:39.197183+00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sample_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column(
            "ethics_reference",
            sa.String(length=64),
            nullable=False,
            comment="Ethics committee approval number",
        ),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.Column(
            "requirements",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "consent_scopes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "feasibility",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "approved",
                "rejected",
                "withdrawn",
                "allocated",
                "shipped",
                "received",
                name="requeststatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_sample_requests_cohort_id_cohorts")
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["users.id"], name=op.f("fk_sample_requests_requester_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["cohort_snapshots.id"],
            name=op.f("fk_sample_requests_snapshot_id_cohort_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_requests")),
        sa.UniqueConstraint("code", name=op.f("uq_sample_requests_code")),
    )
    with op.batch_alter_table("sample_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sample_requests_requester_id"), ["requester_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sample_requests_status"), ["status"], unique=False)

    op.create_table(
        "request_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("signer_id", sa.Integer(), nullable=False),
        sa.Column("signer_name", sa.String(length=128), nullable=False, comment="Printed name of the signer"),
        sa.Column("meaning", sa.String(length=32), nullable=False, comment="approved or rejected"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["sample_requests.id"],
            name=op.f("fk_request_signatures_request_id_sample_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["signer_id"], ["users.id"], name=op.f("fk_request_signatures_signer_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_signatures")),
    )
    with op.batch_alter_table("request_signatures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_signatures_request_id"), ["request_id"], unique=False)

    op.create_table(
        "shipments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(length=255), nullable=False, comment="Receiving lab and address"),
        sa.Column("courier", sa.String(length=128), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=True),
        sa.Column(
            "temperature",
            sa.String(length=32),
            nullable=False,
            comment="ambient, 2-8C, dry_ice or liquid_nitrogen",
        ),
        sa.Column("shipped_by", sa.String(length=64), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_by", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "reconciliation",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="missing, damaged and extra barcodes found at the destination",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["sample_requests.id"], name=op.f("fk_shipments_request_id_sample_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint("request_id", name=op.f("uq_shipments_request_id")),
    )
    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("needs_processing", sa.Boolean(), nullable=False),
        sa.Column("allocated_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "picked_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When its barcode was scanned at the freezer",
        ),
        sa.Column("picked_by", sa.String(length=64), nullable=True),
        sa.Column(
            "received_condition",
            sa.String(length=32),
            nullable=True,
            comment="At the destination: acceptable, damaged, thawed, leaking; NULL: not received",
        ),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_allocations_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["sample_requests.id"], name=op.f("fk_allocations_request_id_sample_requests")
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"], ["specimens.id"], name=op.f("fk_allocations_specimen_id_specimens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allocations_request_id"), ["request_id"], unique=False)
        batch_op.create_index(
            "uq_allocations_specimen_id_live",
            ["specimen_id"],
            unique=True,
            sqlite_where=sa.text("released_at IS NULL"),
            postgresql_where=sa.text("released_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_allocations_specimen_id_live",
            sqlite_where=sa.text("released_at IS NULL"),
            postgresql_where=sa.text("released_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_allocations_request_id"))

    op.drop_table("allocations")
    op.drop_table("shipments")
    with op.batch_alter_table("request_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_signatures_request_id"))

    op.drop_table("request_signatures")
    with op.batch_alter_table("sample_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sample_requests_status"))
        batch_op.drop_index(batch_op.f("ix_sample_requests_requester_id"))

    op.drop_table("sample_requests")
