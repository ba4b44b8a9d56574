"""printers and print jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 02:28:27.902680+00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "printers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "zpl_tcp",
                "cups",
                "pdf",
                name="printerkind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "address",
            sa.String(length=128),
            nullable=True,
            comment="host:port for ZPL over TCP, queue name for CUPS",
        ),
        sa.Column("dpi", sa.Integer(), nullable=False),
        sa.Column("default_template", sa.String(length=64), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_printers_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_printers")),
        sa.UniqueConstraint("name", name=op.f("uq_printers_name")),
    )
    op.create_table(
        "print_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("printer_id", sa.Integer(), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False, comment="zpl or pdf"),
        sa.Column("copies", sa.Integer(), nullable=False),
        sa.Column("label_count", sa.Integer(), nullable=False),
        sa.Column(
            "barcodes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment='{"items": [barcode, ...]}',
        ),
        sa.Column("reprint_reason", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "failed",
                "ready",
                name="printjobstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False, comment="specimen, box, api, cli, …"),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_print_jobs_actor_id_users")),
        sa.ForeignKeyConstraint(
            ["printer_id"], ["printers.id"], name=op.f("fk_print_jobs_printer_id_printers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_jobs")),
    )
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_print_jobs_printer_id"), ["printer_id"], unique=False)
    op.create_table(
        "print_job_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("barcode", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["print_jobs.id"], name=op.f("fk_print_job_items_job_id_print_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_job_items")),
    )
    with op.batch_alter_table("print_job_items", schema=None) as batch_op:
        batch_op.create_index("ix_print_job_items_barcode_template", ["barcode", "template"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_print_job_items_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("print_job_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_print_job_items_job_id"))
        batch_op.drop_index("ix_print_job_items_barcode_template")
    op.drop_table("print_job_items")
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_print_jobs_printer_id"))

    op.drop_table("print_jobs")
    op.drop_table("printers")
