"""position schemes, fill orders and bulk imports

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 06:01:59.593809+00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "template", sa.String(length=32), nullable=False, comment="Import template: master, participants…"
        ),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                "validated",
                name="importstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column(
            "created",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="Rows written per table, once the import has committed",
        ),
        sa.Column(
            "stored_path",
            sa.Text(),
            nullable=True,
            comment="Where the uploaded file is kept until it has been processed",
        ),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_by_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_import_jobs_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_jobs")),
    )
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_jobs_sha256"), ["sha256"], unique=False)
        batch_op.create_index(
            "uq_import_jobs_sha256_succeeded",
            ["sha256"],
            unique=True,
            sqlite_where=sa.text("status = 'succeeded'"),
            postgresql_where=sa.text("status = 'succeeded'"),
        )

    op.create_table(
        "import_problems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column(
            "line", sa.Integer(), nullable=False, comment="Line (CSV) or row (XLSX) in the file; 0: the file"
        ),
        sa.Column("column", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["import_jobs.id"],
            name=op.f("fk_import_problems_job_id_import_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_problems")),
    )
    with op.batch_alter_table("import_problems", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_problems_job_id"), ["job_id"], unique=False)

    with op.batch_alter_table("storage_containers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "position_scheme",
                sa.Enum(
                    "letter_number",
                    "number",
                    "row_column",
                    name="positionscheme",
                    native_enum=False,
                    create_constraint=True,
                    length=32,
                ),
                server_default="letter_number",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "fill_order",
                sa.Enum(
                    "row_major",
                    "column_major",
                    name="fillorder",
                    native_enum=False,
                    create_constraint=True,
                    length=32,
                ),
                server_default="row_major",
                nullable=False,
            )
        )



def downgrade() -> None:
    with op.batch_alter_table("storage_containers", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_storage_containers_fillorder"), type_="check")
        batch_op.drop_constraint(op.f("ck_storage_containers_positionscheme"), type_="check")
        batch_op.drop_column("fill_order")
        batch_op.drop_column("position_scheme")

    with op.batch_alter_table("import_problems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_problems_job_id"))

    op.drop_table("import_problems")
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_import_jobs_sha256_succeeded",
            sqlite_where=sa.text("status = 'succeeded'"),
            postgresql_where=sa.text("status = 'succeeded'"),
        )
        batch_op.drop_index(batch_op.f("ix_import_jobs_sha256"))

    op.drop_table("import_jobs")
