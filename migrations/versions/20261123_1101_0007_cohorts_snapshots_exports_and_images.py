"""cohorts, snapshots, exports and images

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 11:01:05.507432+00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: a frozen snapshot, its members and objects, and an export's split assignments never change
FROZEN_TABLES = (
    "cohort_snapshots",
    "cohort_snapshot_members",
    "cohort_snapshot_objects",
    "cohort_export_splits",
)


def upgrade() -> None:
    op.create_table(
        "cohorts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "level", sa.String(length=16), nullable=False, comment="cases, lesions, specimens or aliquots"
        ),
        sa.Column(
            "filters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
            comment="GDC filter document",
        ),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_cohorts_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohorts")),
    )
    with op.batch_alter_table("cohorts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cohorts_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "cohort_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column(
            "filters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "data_release",
            sa.String(length=64),
            nullable=False,
            comment="Database state the snapshot was taken at",
        ),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("object_count", sa.Integer(), nullable=False),
        sa.Column("members_sha256", sa.String(length=64), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_cohort_snapshots_cohort_id_cohorts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohort_snapshots")),
    )
    with op.batch_alter_table("cohort_snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cohort_snapshots_cohort_id"), ["cohort_id"], unique=False)

    op.create_table(
        "cohort_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("salt", sa.String(length=128), nullable=False),
        sa.Column("salt_family", sa.String(length=128), nullable=False),
        sa.Column(
            "ratios",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("stratify_by", sa.String(length=32), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column(
            "pinned_to_test",
            sa.Integer(),
            nullable=False,
            comment="Patients kept in test because an earlier export of the family had them there",
        ),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["cohort_snapshots.id"],
            name=op.f("fk_cohort_exports_snapshot_id_cohort_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohort_exports")),
    )
    with op.batch_alter_table("cohort_exports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cohort_exports_salt_family"), ["salt_family"], unique=False)
        batch_op.create_index(batch_op.f("ix_cohort_exports_snapshot_id"), ["snapshot_id"], unique=False)

    op.create_table(
        "cohort_snapshot_members",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["cohort_snapshots.id"],
            name=op.f("fk_cohort_snapshot_members_snapshot_id_cohort_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "entity_id", name=op.f("pk_cohort_snapshot_members")),
    )
    op.create_table(
        "cohort_snapshot_objects",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="omics or image"),
        sa.Column("object_id", sa.Integer(), nullable=False, comment="omics_file_samples.id or images.id"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["cohort_snapshots.id"],
            name=op.f("fk_cohort_snapshot_objects_snapshot_id_cohort_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "kind", "object_id", name=op.f("pk_cohort_snapshot_objects")),
    )
    op.create_table(
        "cohort_export_splits",
        sa.Column("export_id", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(length=64), nullable=False, comment="Pseudonymous code"),
        sa.Column("split", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["cohort_exports.id"],
            name=op.f("fk_cohort_export_splits_export_id_cohort_exports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("export_id", "participant", name=op.f("pk_cohort_export_splits")),
    )
    with op.batch_alter_table("cohort_export_splits", schema=None) as batch_op:
        batch_op.create_index("ix_cohort_export_splits_participant", ["participant", "split"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("lesion_id", sa.Integer(), nullable=True),
        sa.Column("specimen_id", sa.Integer(), nullable=True),
        sa.Column(
            "modality",
            sa.Enum(
                "dermoscopy",
                "clinical_overview",
                "clinical_closeup",
                "wsi",
                name="imagemodality",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False, comment="Path under the image storage root"),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column(
            "acquisition_day",
            sa.Integer(),
            nullable=True,
            comment="Days from diagnosis to acquisition (negative: before diagnosis)",
        ),
        sa.Column(
            "dicom",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "clinical",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "quality_flags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_images_case_id_cases")),
        sa.ForeignKeyConstraint(["lesion_id"], ["lesions.id"], name=op.f("fk_images_lesion_id_lesions")),
        sa.ForeignKeyConstraint(
            ["specimen_id"], ["specimens.id"], name=op.f("fk_images_specimen_id_specimens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("sha256", name=op.f("uq_images_sha256")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_lesion_id"), ["lesion_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_modality"), ["modality"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_specimen_id"), ["specimen_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # A snapshot is sealed once its manifest digest is written: from then on neither it
        # nor its members and objects change, and nothing is added to it.
        op.execute(
            """
            CREATE FUNCTION cohort_snapshot_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_TABLE_NAME = 'cohort_snapshots' THEN
                    IF TG_OP = 'UPDATE' THEN
                        IF OLD.manifest_sha256 = '' THEN
                            RETURN NEW;
                        END IF;
                    END IF;
                ELSIF TG_OP = 'INSERT' THEN
                    IF (SELECT manifest_sha256 FROM cohort_snapshots
                        WHERE id = NEW.snapshot_id) = '' THEN
                        RETURN NEW;
                    END IF;
                END IF;
                RAISE EXCEPTION 'cohort snapshots are frozen: % on % refused',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        for table in FROZEN_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_frozen BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION cohort_snapshot_frozen()"
            )
        for table in ("cohort_snapshot_members", "cohort_snapshot_objects"):
            op.execute(
                f"CREATE TRIGGER {table}_sealed BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION cohort_snapshot_frozen()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in FROZEN_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_frozen ON {table}")
        for table in ("cohort_snapshot_members", "cohort_snapshot_objects"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_sealed ON {table}")
        op.execute("DROP FUNCTION IF EXISTS cohort_snapshot_frozen()")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_specimen_id"))
        batch_op.drop_index(batch_op.f("ix_images_modality"))
        batch_op.drop_index(batch_op.f("ix_images_lesion_id"))
        batch_op.drop_index(batch_op.f("ix_images_case_id"))

    op.drop_table("images")
    with op.batch_alter_table("cohort_export_splits", schema=None) as batch_op:
        batch_op.drop_index("ix_cohort_export_splits_participant")

    op.drop_table("cohort_export_splits")
    op.drop_table("cohort_snapshot_objects")
    op.drop_table("cohort_snapshot_members")
    with op.batch_alter_table("cohort_exports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cohort_exports_snapshot_id"))
        batch_op.drop_index(batch_op.f("ix_cohort_exports_salt_family"))

    op.drop_table("cohort_exports")
    with op.batch_alter_table("cohort_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cohort_snapshots_cohort_id"))

    op.drop_table("cohort_snapshots")
    with op.batch_alter_table("cohorts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cohorts_owner_id"))

    op.drop_table("cohorts")
