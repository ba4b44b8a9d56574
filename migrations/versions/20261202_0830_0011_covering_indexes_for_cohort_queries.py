"""covering indexes for cohort queries

A five-clause cohort query with four facets probes tens of thousands of cases, tubes,
consents and images; with these indexes each probe reads an index page, not a table row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 08:30:00+00:00
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: name → (table, columns before, columns after); None: the index is new
INDEXES = {
    "ix_specimens_case_id": ("specimens", ["case_id"],
                             ["case_id", "material_type", "status", "unit", "quantity"]),
    "ix_specimens_lesion_id": ("specimens", ["lesion_id"],
                               ["lesion_id", "material_type", "status", "unit", "quantity"]),
    "ix_specimens_id_ancestors": ("specimens", None,
                                  ["id", "case_id", "lesion_id", "participant_id"]),
    "ix_consent_responses_tier_id": ("consent_responses", ["tier_id"],
                                     ["tier_id", "decision", "withdrawn_at", "participant_id"]),
    "ix_consent_responses_participant_id_given": (
        "consent_responses", None, ["participant_id", "decision", "withdrawn_at", "tier_id"]),
    "ix_images_case_id": ("images", ["case_id"], ["case_id", "modality"]),
    "ix_images_lesion_id": ("images", ["lesion_id"], ["lesion_id", "modality"]),
    "ix_images_modality": ("images", ["modality"], ["modality", "case_id", "lesion_id"]),
    "ix_cases_id_summary": ("cases", None, ["id", "participant_id", "disease_group"]),
    "ix_lesions_id_case_id": ("lesions", None, ["id", "case_id"]),
}


def upgrade() -> None:
    for name, (table, before, after) in INDEXES.items():
        if before is not None:
            op.drop_index(name, table_name=table)
        op.create_index(name, table, after)


def downgrade() -> None:
    for name, (table, before, _after) in INDEXES.items():
        op.drop_index(name, table_name=table)
        if before is not None:
            op.create_index(name, table, before)
