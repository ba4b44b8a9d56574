"""each site of a request ships its own parcel: shipments.site_id, allocations.shipment_id

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 13:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_id", sa.Integer(), nullable=True,
                                      comment="The site the parcel leaves from"))
    # An earlier parcel was the request's only one: it left from the (first) site of its
    # tubes, and every live allocation of the request travelled in it.
    op.execute(
        "UPDATE shipments SET site_id = COALESCE("
        "(SELECT MIN(specimens.site_id) FROM allocations JOIN specimens "
        "ON specimens.id = allocations.specimen_id "
        "WHERE allocations.request_id = shipments.request_id), "
        "(SELECT MIN(id) FROM sites))")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.alter_column("site_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint("uq_shipments_request_id", type_="unique")
        batch_op.create_unique_constraint(op.f("uq_shipments_request_id_site_id"),
                                          ["request_id", "site_id"])
        batch_op.create_index(batch_op.f("ix_shipments_request_id"), ["request_id"],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_shipments_site_id_sites"), "sites",
                                    ["site_id"], ["id"])
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shipment_id", sa.Integer(), nullable=True,
                                      comment="The parcel it left in"))
        batch_op.create_index(batch_op.f("ix_allocations_shipment_id"), ["shipment_id"],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_allocations_shipment_id_shipments"),
                                    "shipments", ["shipment_id"], ["id"])
    op.execute(
        "UPDATE allocations SET shipment_id = (SELECT shipments.id FROM shipments "
        "WHERE shipments.request_id = allocations.request_id) "
        "WHERE released_at IS NULL")


def downgrade() -> None:
    several = op.get_bind().scalar(sa.text(
        "SELECT COUNT(*) FROM (SELECT request_id FROM shipments GROUP BY request_id "
        "HAVING COUNT(*) > 1) AS s"))
    if several:
        # The older shape holds one parcel per request: refuse rather than drop parcels.
        raise RuntimeError(f"{several} request(s) have parcels from several sites; "
                           "the earlier schema cannot hold them")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_allocations_shipment_id_shipments"),
                                 type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_allocations_shipment_id"))
        batch_op.drop_column("shipment_id")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_shipments_site_id_sites"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_shipments_request_id"))
        batch_op.drop_constraint(batch_op.f("uq_shipments_request_id_site_id"), type_="unique")
        batch_op.create_unique_constraint("uq_shipments_request_id", ["request_id"])
        batch_op.drop_column("site_id")
