"""snapshot objects keep their manifest row as frozen; snapshot digests name their key;
exports record the digest of the bytes delivered and the rows they left out

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 16:00:00+00:00

Snapshots frozen earlier keep NULL content and key: their manifests are still read from the
live records and their digests stay plain SHA-256, which ``…/verify`` reports.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("cohort_snapshot_objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "content", JSON, nullable=True,
            comment="The object's manifest row as frozen (NULL: frozen before content was kept)"))
    with op.batch_alter_table("cohort_snapshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "key_id", sa.String(length=16), nullable=True,
            comment="Custody key of the digests (NULL: plain SHA-256, frozen before keyed "
            "digests)"))
    with op.batch_alter_table("cohort_exports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manifest_sha256", sa.String(length=64), nullable=True,
                                      comment="SHA-256 of the exact bytes delivered"))
        batch_op.add_column(sa.Column(
            "exclusions", JSON, nullable=True,
            comment="Frozen rows left out of this export, each with its reason"))


def downgrade() -> None:
    with op.batch_alter_table("cohort_exports", schema=None) as batch_op:
        batch_op.drop_column("exclusions")
        batch_op.drop_column("manifest_sha256")
    with op.batch_alter_table("cohort_snapshots", schema=None) as batch_op:
        batch_op.drop_column("key_id")
    with op.batch_alter_table("cohort_snapshot_objects", schema=None) as batch_op:
        batch_op.drop_column("content")
