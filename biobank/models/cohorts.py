"""Cohorts: a saved filter, its frozen snapshots, and the exports made from them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import created_at, db, intpk, str16, str64, str128, updated_at

if TYPE_CHECKING:
    from biobank.models.users import User


class Cohort(db.Model):
    """A named filter at a level. Its answer changes with the data; snapshots do not."""

    __tablename__ = "cohorts"

    id: Mapped[intpk]
    name: Mapped[str128]
    description: Mapped[str | None] = mapped_column(sa.Text)
    level: Mapped[str16] = mapped_column(comment="cases, lesions, specimens or aliquots")
    filters: Mapped[dict[str, Any] | None] = mapped_column(comment="GDC filter document")
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    owner: Mapped[User] = relationship()
    snapshots: Mapped[list[CohortSnapshot]] = relationship(
        back_populates="cohort", order_by="CohortSnapshot.id"
    )


class CohortSnapshot(db.Model):
    """The members and data objects of a cohort at one moment, with the manifest content
    of each object as it was then; never changed afterwards.

    ``members_sha256`` is an HMAC, under the custody key ``key_id`` names, of the snapshot
    and its sorted member ids; ``manifest_sha256`` one of every object and its frozen content.
    Without the key nobody can change a member or an object and recompute them. Snapshots
    frozen before keyed digests (``key_id`` NULL) carry plain SHA-256 digests.
    """

    __tablename__ = "cohort_snapshots"

    id: Mapped[intpk]
    cohort_id: Mapped[int] = mapped_column(sa.ForeignKey("cohorts.id"), index=True)
    level: Mapped[str16]
    filters: Mapped[dict[str, Any] | None]
    data_release: Mapped[str64] = mapped_column(comment="Database state the snapshot was taken at")
    member_count: Mapped[int]
    object_count: Mapped[int]
    members_sha256: Mapped[str] = mapped_column(sa.String(64))
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64))
    key_id: Mapped[str16 | None] = mapped_column(
        comment="Custody key of the digests (NULL: plain SHA-256, frozen before keyed digests)"
    )
    created_by: Mapped[str64]
    created_at: Mapped[created_at]

    cohort: Mapped[Cohort] = relationship(back_populates="snapshots")


class CohortSnapshotMember(db.Model):
    __tablename__ = "cohort_snapshot_members"

    snapshot_id: Mapped[int] = mapped_column(
        sa.ForeignKey("cohort_snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    entity_id: Mapped[int] = mapped_column(primary_key=True)


class CohortSnapshotObject(db.Model):
    """A data object of a member: an omics file's sample column or an image."""

    __tablename__ = "cohort_snapshot_objects"

    snapshot_id: Mapped[int] = mapped_column(
        sa.ForeignKey("cohort_snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str16] = mapped_column(primary_key=True, comment="omics or image")
    object_id: Mapped[int] = mapped_column(primary_key=True, comment="omics_file_samples.id or images.id")
    content: Mapped[dict[str, Any] | None] = mapped_column(
        comment="The object's manifest row as frozen (NULL: frozen before content was kept)"
    )


class CohortExport(db.Model):
    """One manifest export of a snapshot with its split parameters and assignments."""

    __tablename__ = "cohort_exports"

    id: Mapped[intpk]
    snapshot_id: Mapped[int] = mapped_column(sa.ForeignKey("cohort_snapshots.id"), index=True)
    salt: Mapped[str128]
    salt_family: Mapped[str128] = mapped_column(index=True)
    ratios: Mapped[dict[str, Any]]
    stratify_by: Mapped[str | None] = mapped_column(sa.String(32))
    format: Mapped[str16]
    pinned_to_test: Mapped[int] = mapped_column(
        default=0, comment="Patients kept in test because an earlier export of the family had them there"
    )
    manifest_sha256: Mapped[str | None] = mapped_column(
        sa.String(64), comment="SHA-256 of the exact bytes delivered"
    )
    exclusions: Mapped[list[dict[str, Any]] | None] = mapped_column(
        comment="Frozen rows left out of this export, each with its reason"
    )
    created_by: Mapped[str64]
    created_at: Mapped[created_at]

    assignments: Mapped[list[CohortExportSplit]] = relationship(cascade="all, delete-orphan")


class CohortExportSplit(db.Model):
    __tablename__ = "cohort_export_splits"
    __table_args__ = (sa.Index("ix_cohort_export_splits_participant", "participant", "split"),)

    export_id: Mapped[int] = mapped_column(
        sa.ForeignKey("cohort_exports.id", ondelete="CASCADE"), primary_key=True
    )
    participant: Mapped[str64] = mapped_column(primary_key=True, comment="Pseudonymous code")
    split: Mapped[str16]
