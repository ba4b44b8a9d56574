"""custody events carry the id of the key of their digest; checkpoints a kind (checkpoint
or seal), a Merkle root and their key id

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 14:00:00+00:00

Events written before the custody key keep their plain SHA-256 digests (key_id NULL);
``biobank.migrate.upgrade`` seals them right after this migration, under the key.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("custody_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True,
                                      comment="Id of the custody key of the digest"))
        batch_op.alter_column(
            "hash", existing_type=sa.String(length=64), existing_nullable=False,
            comment="HMAC-SHA256 under the custody key (plain SHA-256 if key_id is NULL: "
            "written before the key, sealed since)")
    with op.batch_alter_table("custody_checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False,
                                      server_default="checkpoint",
                                      comment="checkpoint or seal"))
        batch_op.add_column(sa.Column("root", sa.String(length=64), nullable=True,
                                      comment="Merkle root of the bucket digests"))
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True,
                                      comment="Id of the signing key"))
        batch_op.alter_column(
            "buckets", existing_nullable=False, existing_type=sa.JSON(),
            comment="{\"<specimen id // 256>\": [digest of that bucket's chain heads, events]}")
    with op.batch_alter_table("custody_checkpoints", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None, existing_type=sa.String(length=16),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("custody_checkpoints", schema=None) as batch_op:
        batch_op.drop_column("key_id")
        batch_op.drop_column("root")
        batch_op.drop_column("kind")
    with op.batch_alter_table("custody_events", schema=None) as batch_op:
        batch_op.drop_column("key_id")
